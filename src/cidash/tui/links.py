"""Web links for ``o`` (open in the browser) and ``y`` (copy): built by cidash from the configured GitLab
origin, the project path and numeric ids, never taken from what GitLab sent (a ``web_url`` field could point
anywhere and carry escape sequences). Pure; no Textual.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from cidash.textsafe import has_unsafe


def gitlab_origin(url: str | None) -> str | None:
    """``scheme://host[:port][/prefix]`` of the configured GitLab URL, or None when it is not a plain http(s) URL
    (no user info, query or fragment)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    if parts.query or parts.fragment or has_unsafe(url, allow=""):
        return None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def web_url(origin_url: str | None, project_path: str, kind: str = "project", ident: int | None = None) -> str | None:
    """The GitLab page of a project, pipeline, job or the container registry, or None when no URL can be built
    safely. ``kind``: "project", "pipeline", "job", "registry", "pipelines"."""
    origin = gitlab_origin(origin_url)
    if origin is None or not project_path or has_unsafe(project_path, allow=""):
        return None
    base = f"{origin}/{quote(project_path.strip('/'), safe='/')}"
    if kind == "project":
        url = base
    elif kind == "pipelines":
        url = f"{base}/-/pipelines"
    elif kind == "registry":
        url = f"{base}/container_registry"
    elif kind in ("pipeline", "job") and ident is not None and ident > 0:
        url = f"{base}/-/{kind}s/{int(ident)}"
    else:
        return None
    return url if is_safe_link(url, origin) else None


def is_safe_link(url: str, origin: str) -> bool:
    """A plain http(s) URL under ``origin``, nothing a terminal could read as a control sequence."""
    if has_unsafe(url, allow="") or any(ch.isspace() or not ch.isascii() for ch in url):
        return False
    return url == origin or url.startswith(origin + "/")

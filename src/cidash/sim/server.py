"""The HTTP side of the simulated GitLab: :class:`SimulatedGitLab` (a context manager) and the request handler.

``with SimulatedGitLab() as sim:`` starts a ``ThreadingHTTPServer`` on ``127.0.0.1`` (ephemeral port) in a
background thread; ``sim.url`` is ``http://127.0.0.1:PORT``. HTTP/1.1 keep-alive, ``HEAD`` on every ``GET``
route, ``Content-Length`` bodies. Routes follow GitLab's REST API v4 (paths, field names, status codes, pagination
and rate-limit headers); see ``src/cidash/sim/README.md`` for the list.

Public API::

    SimulatedGitLab(scenario=Scenario(), token="demo-token", readonly_token="demo-readonly-token",
                    latency_ms=0, jitter_ms=0, faults=FaultPlan(), rate_limit=None, rate_limit_window=60.0,
                    rate_limit_advertised=2000, time_scale=0.0, world=None, port=0, clock_start=None,
                    hostile_numbers=None)

Rate limits: every response carries ``RateLimit-Limit/Observed/Remaining/Reset`` for a fixed window of
``rate_limit_window`` seconds per user; the advertised limit is ``rate_limit`` if set (and then exceeding it
answers 429 + ``Retry-After``), else ``rate_limit_advertised`` (GitLab.com's 2,000/min) without enforcement;
``rate_limit_advertised=None`` (and no ``rate_limit``) sends no ``RateLimit-*`` header, as a self-managed GitLab
with its throttles off (the default) does.
    .url .token .readonly_token .project_path .project_id .world .truth .stats
    .set_faults(plan) .advance(seconds) .start() .stop()

``stats``: :class:`Stats` with ``total_requests``, ``by_endpoint`` ({template: count}), ``bytes_by_endpoint``,
``by_method``, ``by_status``, ``mutating_requests``, ``log`` (method, path, status), ``reset()``. Also served
as ``GET /__sim/stats`` and reset by ``POST /__sim/stats/reset`` (no token needed).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from cidash.sim import hostile_strings
from cidash.sim.faults import FaultDecision, FaultPlan, FaultState
from cidash.sim.hostile_numbers import HostileNumbers
from cidash.sim.scenario import Scenario, Truth, build_world
from cidash.sim.tracegen import render_trace
from cidash.sim.world import JOB_SCOPES, SimCommit, SimJob, SimPipeline, SimProject, World

GITLAB_VERSION = "18.6.0-ee"  # the default Scenario.gitlab_version, as /version prints it
GITLAB_REVISION = "2b1c0f3a9e1"
MAX_PER_PAGE = 100
COUNT_LIMIT = 10_000
#: Changed files a compare lists before it sets ``compare_timeout`` (GitLab cuts big diffs the same way).
COMPARE_MAX_FILES = 1000
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Json = Any


def iso(t: float | None) -> str | None:
    """GitLab's timestamp format: ``2026-11-02T10:15:03.123Z``."""
    if t is None:
        return None
    dt = datetime.fromtimestamp(round(t, 3), UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(value: str) -> float:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


class ApiError(Exception):
    def __init__(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _message(status: int, text: str) -> ApiError:
    return ApiError(status, {"message": text})


@dataclass
class Stats:
    """Request accounting. Thread-safe; ``reset()`` clears everything."""

    total_requests: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    bytes_by_endpoint: Counter[str] = field(default_factory=Counter)
    by_method: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    log: list[tuple[str, str, int]] = field(default_factory=list)
    bytes_out: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, method: str, template: str, path: str, status: int, nbytes: int) -> None:
        with self._lock:
            self.total_requests += 1
            key = f"{method} {template}"
            self.by_endpoint[key] += 1
            self.bytes_by_endpoint[key] += nbytes
            self.by_method[method] += 1
            self.by_status[status] += 1
            self.bytes_out += nbytes
            if len(self.log) < 100_000:
                self.log.append((method, path, status))

    @property
    def mutating_requests(self) -> int:
        return sum(n for m, n in self.by_method.items() if m in MUTATING)

    def count(self, pattern: str) -> int:
        """Requests whose ``"METHOD template"`` contains ``pattern`` (e.g. ``"/trace"``)."""
        return sum(n for k, n in self.by_endpoint.items() if pattern in k)

    def reset(self) -> None:
        with self._lock:
            self.total_requests = 0
            self.bytes_out = 0
            self.by_endpoint.clear()
            self.bytes_by_endpoint.clear()
            self.by_method.clear()
            self.by_status.clear()
            self.log.clear()

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total_requests": self.total_requests,
                "bytes_out": self.bytes_out,
                "mutating_requests": self.mutating_requests,
                "by_method": dict(sorted(self.by_method.items())),
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                "by_endpoint": dict(sorted(self.by_endpoint.items())),
                "bytes_by_endpoint": dict(sorted(self.bytes_by_endpoint.items())),
            }


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str]
    user: str = ""
    role: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        if values:
            return values[-1]
        return default

    def args(self, name: str) -> list[str]:
        return self.query.get(name, []) + self.query.get(name + "[]", [])

    def json_body(self) -> dict[str, Any]:
        if not self.body:
            return {}
        ctype = self.headers.get("content-type", "")
        if "json" in ctype:
            try:
                data = json.loads(self.body)
            except ValueError as exc:
                raise ApiError(400, {"error": "invalid JSON body"}) from exc
            if not isinstance(data, dict):
                raise ApiError(400, {"error": "body must be an object"})
            return data
        form = parse_qs(self.body.decode(errors="replace"), keep_blank_values=True)
        out: dict[str, Any] = {k: v[-1] for k, v in form.items()}
        # variables[][key]=...&variables[][value]=... (Rails-style form arrays)
        keys = form.get("variables[][key]", [])
        values = form.get("variables[][value]", [])
        types = form.get("variables[][variable_type]", [])
        if keys:
            out["variables"] = [
                {
                    "key": k,
                    "value": values[i] if i < len(values) else "",
                    "variable_type": types[i] if i < len(types) else "env_var",
                }
                for i, k in enumerate(keys)
            ]
        return out


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]
    content_type: str = "application/json"


Handler = Callable[["Api", Request], "Response | Json"]


class Api:
    """Routing and GitLab semantics over a :class:`World` (HTTP-free, so it is easy to reason about)."""

    def __init__(self, sim: SimulatedGitLab) -> None:
        self.sim = sim
        self.world = sim.world
        self._local = threading.local()
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        r = self._route
        r("GET", "/api/v4/version", Api.version)
        r("GET", "/api/v4/metadata", Api.version)
        r("GET", "/api/v4/user", Api.user)
        r("GET", "/api/v4/personal_access_tokens/self", Api.token_self)
        r("GET", "/api/v4/projects", Api.projects)
        r("GET", "/api/v4/projects/:id", Api.project)
        r("GET", "/api/v4/groups/:gid", Api.group)
        r("GET", "/api/v4/groups/:gid/projects", Api.group_projects)
        r("GET", "/api/v4/projects/:id/pipelines", Api.pipelines)
        r("POST", "/api/v4/projects/:id/pipeline", Api.create_pipeline)
        r("GET", "/api/v4/projects/:id/pipelines/:pipeline_id", Api.pipeline)
        r("GET", "/api/v4/projects/:id/pipelines/:pipeline_id/jobs", Api.pipeline_jobs)
        r("GET", "/api/v4/projects/:id/pipelines/:pipeline_id/bridges", Api.pipeline_bridges)
        r("GET", "/api/v4/projects/:id/pipelines/:pipeline_id/variables", Api.pipeline_variables)
        r("GET", "/api/v4/projects/:id/jobs", Api.project_jobs)
        r("GET", "/api/v4/projects/:id/jobs/:job_id", Api.job)
        r("GET", "/api/v4/projects/:id/jobs/:job_id/trace", Api.trace)
        r("POST", "/api/v4/projects/:id/jobs/:job_id/retry", Api.retry)
        r("POST", "/api/v4/projects/:id/jobs/:job_id/play", Api.play)
        r("POST", "/api/v4/projects/:id/jobs/:job_id/cancel", Api.cancel)
        r("GET", "/api/v4/projects/:id/repository/files/:file_path", Api.file)
        r("GET", "/api/v4/projects/:id/repository/files/:file_path/raw", Api.file_raw)
        r("GET", "/api/v4/projects/:id/repository/commits", Api.commits)
        r("GET", "/api/v4/projects/:id/repository/commits/:sha", Api.commit)
        r("GET", "/api/v4/projects/:id/repository/compare", Api.compare)
        r("GET", "/api/v4/projects/:id/repository/branches", Api.branches)
        r("GET", "/api/v4/projects/:id/repository/branches/:branch", Api.branch)
        r("GET", "/api/v4/projects/:id/registry/repositories", Api.registry_repositories)
        r("GET", "/api/v4/projects/:id/registry/repositories/:repository_id/tags", Api.registry_tags)
        r("GET", "/api/v4/projects/:id/registry/repositories/:repository_id/tags/:tag_name", Api.registry_tag)
        r("GET", "/api/v4/registry/repositories/:repository_id", Api.registry_repository)
        r("GET", "/api/v4/projects/:id/resource_groups", Api.resource_groups)
        r("GET", "/api/v4/projects/:id/resource_groups/:key", Api.resource_group)
        r("GET", "/api/v4/projects/:id/resource_groups/:key/upcoming_jobs", Api.resource_group_upcoming)
        r("GET", "/jwt/auth", Api.jwt_auth)
        r("GET", "/v2/:name+/manifests/:reference", Api.manifest)

    def _route(self, method: str, template: str, handler: Handler) -> None:
        pattern = "^"
        for part in template.strip("/").split("/"):
            if part.startswith(":") and part.endswith("+"):
                pattern += f"/(?P<{part[1:-1]}>.+)"
            elif part.startswith(":"):
                pattern += f"/(?P<{part[1:]}>[^/]+)"
            else:
                pattern += "/" + re.escape(part)
        pattern += "$"
        display = template.removeprefix("/api/v4")
        self.routes.append((method, re.compile(pattern), display, handler))

    def match(self, method: str, path: str) -> tuple[str, Handler | None, dict[str, str], bool]:
        """(template, handler, params, method_allowed)."""
        lookup = "GET" if method == "HEAD" else method
        path_known = False
        for route_method, regex, template, handler in self.routes:
            m = regex.match(path)
            if m is None:
                continue
            path_known = True
            if route_method == lookup:
                return template, handler, {k: unquote(v) for k, v in m.groupdict().items()}, True
        return path, None, {}, not path_known

    # -- helpers -------------------------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.world.now()

    def base(self) -> str:
        """Where the client reached us (its ``Host`` header), so ``Link`` and ``web_url`` work via any name."""
        host = getattr(self._local, "host", None)
        if host and re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
            return f"http://{host}"
        return self.sim.url

    def project_of(self, req: Request) -> SimProject:
        project = self.world.project(req.params["id"])
        if project is None:
            raise _message(404, "404 Project Not Found")
        return project

    def web(self, project: SimProject, suffix: str = "") -> str:
        return f"{self.base()}/{project.path}{suffix}"

    def user_json(self, username: str) -> dict[str, Any]:
        uid = 1 if username == "demo" else 2 if username == "ci-bot" else 3
        name = {"demo": "Demo Maintainer", "ci-bot": "CI Bot", "reporter": "Demo Reporter"}.get(username, username)
        return {
            "id": uid,
            "username": username,
            "public_email": None,
            "name": name,
            "state": "active",
            "locked": False,
            "avatar_url": None,
            "web_url": f"{self.base()}/{username}",
        }

    def require_write(self, req: Request) -> None:
        if req.role != "maintainer":
            raise _message(403, "403 Forbidden")

    def paginate(self, req: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        page = _int(req.arg("page"), 1, minimum=1)
        per_page = min(_int(req.arg("per_page"), 20, minimum=1), MAX_PER_PAGE)
        total = len(items)
        pages = max(1, math.ceil(total / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-prev-page": str(page - 1) if page > 1 else "",
            "x-next-page": str(page + 1) if page < pages else "",
        }
        links = []
        if page > 1:
            links.append(f'<{self._page_url(req, page - 1, per_page)}>; rel="prev"')
        if page < pages:
            links.append(f'<{self._page_url(req, page + 1, per_page)}>; rel="next"')
        links.append(f'<{self._page_url(req, 1, per_page)}>; rel="first"')
        if total <= COUNT_LIMIT:
            headers["x-total"] = str(total)
            headers["x-total-pages"] = str(pages)
            links.append(f'<{self._page_url(req, pages, per_page)}>; rel="last"')
        headers["Link"] = ", ".join(links)
        return chunk, headers

    def _page_url(self, req: Request, page: int, per_page: int, extra: dict[str, str] | None = None) -> str:
        query: list[tuple[str, str]] = []
        for key, values in req.query.items():
            if key in ("page", "per_page") or (extra and key in extra):
                continue
            query.extend((key, v) for v in values)
        query.append(("page", str(page)))
        query.append(("per_page", str(per_page)))
        if extra:
            query.extend(extra.items())
        return f"{self.base()}{req.path}?{urlencode(sorted(query))}"

    # -- entity JSON ---------------------------------------------------------------------------------------------
    def project_json(self, project: SimProject, role: str = "maintainer") -> dict[str, Any]:
        return {
            "id": project.id,
            "description": project.description,
            "name": project.name,
            "name_with_namespace": " / ".join(
                part.capitalize() if i == 0 else part for i, part in enumerate(project.path.split("/"))
            ),
            "path": project.path.rsplit("/", 1)[-1],
            "path_with_namespace": project.path,
            "created_at": iso(project.created_at),
            "default_branch": project.default_branch,
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": f"git@gitlab.example.com:{project.path}.git",
            "http_url_to_repo": f"{self.base()}/{project.path}.git",
            "web_url": self.web(project),
            "readme_url": self.web(project, "/-/blob/main/README.md"),
            "avatar_url": None,
            "forks_count": 0,
            "star_count": 3,
            "last_activity_at": iso(project.last_activity_at or project.created_at),
            "namespace": {
                "id": self.world.group_id,
                "name": "Platform",
                "path": self.world.group_path,
                "kind": "group",
                "full_path": self.world.group_path,
                "parent_id": None,
                "avatar_url": None,
                "web_url": f"{self.base()}/groups/{self.world.group_path}",
            },
            "container_registry_image_prefix": f"{self.world.scenario.registry_host}/{project.path}",
            "archived": False,
            "visibility": "private",
            "jobs_enabled": True,
            "container_registry_enabled": True,
            "shared_runners_enabled": True,
            "ci_config_path": "",
            "permissions": {
                "project_access": None,
                "group_access": {"access_level": 40 if role == "maintainer" else 20, "notification_level": 3},
            },
        }

    def _hostile(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        """The record as the hostile-numbers mode serves it (:mod:`cidash.sim.hostile_numbers`), if it is on."""
        hostile = self.sim.hostile_numbers
        return record if hostile is None else hostile.apply(kind, record)

    def pipeline_basic(self, project: SimProject, pipeline: SimPipeline, now: float) -> dict[str, Any]:
        _, _, updated = self.world.pipeline_times(project, pipeline, now)
        out = {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "project_id": project.id,
            "sha": pipeline.sha,
            "ref": pipeline.ref,
            "status": self.world.pipeline_status(project, pipeline, now),
            "source": pipeline.source,
            "created_at": iso(pipeline.created_at),
            "updated_at": iso(updated),
            "web_url": self.web(project, f"/-/pipelines/{pipeline.id}"),
            "name": None,
        }
        return self._hostile("pipeline", out)

    def pipeline_detail(self, project: SimProject, pipeline: SimPipeline, now: float) -> dict[str, Any]:
        started, finished, _updated = self.world.pipeline_times(project, pipeline, now)
        status = self.world.pipeline_status(project, pipeline, now)
        out = self.pipeline_basic(project, pipeline, now)
        duration = None
        if started is not None:
            duration = round((finished if finished is not None else now) - started)
        queued = round(started - pipeline.created_at, 3) if started is not None else None
        out.update(
            {
                "before_sha": pipeline.before_sha,
                "tag": False,
                "yaml_errors": None,
                "user": self.user_json(pipeline.user),
                "started_at": iso(started),
                "finished_at": iso(finished),
                "committed_at": None,
                "duration": duration,
                "queued_duration": queued,
                "coverage": None,
                "detailed_status": {
                    "icon": f"status_{status}",
                    "text": status.replace("_", " "),
                    "label": "passed" if status == "success" else status,
                    "group": status,
                    "tooltip": "passed" if status == "success" else status,
                    "has_details": True,
                    "details_path": f"/{project.path}/-/pipelines/{pipeline.id}",
                    "illustration": None,
                    "favicon": f"/assets/ci_favicons/favicon_status_{status}.png",
                },
                "archived": False,
            }
        )
        return self._hostile("pipeline", out)

    def commit_json(self, project: SimProject, commit: SimCommit) -> dict[str, Any]:
        return {
            "id": commit.sha,
            "short_id": commit.sha[:8],
            "created_at": iso(commit.at),
            "parent_ids": [commit.parent] if commit.parent else [],
            "title": commit.title,
            "message": commit.title + "\n",
            "author_name": commit.author_name,
            "author_email": commit.author_email,
            "authored_date": iso(commit.at),
            "committer_name": commit.author_name,
            "committer_email": commit.author_email,
            "committed_date": iso(commit.at),
            "trailers": {},
            "extended_trailers": {},
            "web_url": self.web(project, f"/-/commit/{commit.sha}"),
        }

    def job_json(self, project: SimProject, job: SimJob, now: float) -> dict[str, Any]:
        pipeline = project.pipelines[job.pipeline_id]
        status = job.status_at(now)
        started = job.started_at if job.started_at is not None and job.started_at <= now else None
        finished = None
        if status in ("success", "failed", "canceled"):
            finished = job.canceled_at if status == "canceled" and job.canceled_at is not None else job.finished_at
            if finished is not None and started is None and status != "canceled":
                finished = None
        duration: float | None = None
        if started is not None:
            duration = round((finished if finished is not None else now) - started, 6)
        queued: float | None = None
        if job.pending_at is not None and job.pending_at <= now:
            until = started if started is not None else now
            queued = round(until - job.pending_at, 6)
        runner: dict[str, Any] | None = None
        if job.runner_id is not None and started is not None:
            runner = {
                "id": job.runner_id,
                "description": (
                    hostile_strings.runner_description(job.runner_id)
                    if self.world.scenario.hostile_strings
                    else f"sim-runner-{job.runner_id}"
                ),
                "ip_address": None,
                "active": True,
                "paused": False,
                "is_shared": True,
                "runner_type": "instance_type",
                "name": "gitlab-runner",
                "online": True,
                "status": "online",
            }
        commit = project.commits.get(pipeline.sha)
        out: dict[str, Any] = {
            "id": job.id,
            "status": status,
            "stage": job.stage,
            "name": job.name,
            "ref": pipeline.ref,
            "tag": False,
            "coverage": None,
            "allow_failure": job.allow_failure,
            "created_at": iso(job.created_at),
            "started_at": iso(started),
            "finished_at": iso(finished),
            "erased_at": None,
            "duration": duration,
            "queued_duration": queued,
            "user": self.user_json(job.user),
            "commit": self.commit_json(project, commit) if commit else None,
            "pipeline": {
                "id": pipeline.id,
                "iid": pipeline.iid,
                "project_id": project.id,
                "sha": pipeline.sha,
                "ref": pipeline.ref,
                "status": self.world.pipeline_status(project, pipeline, now),
                "source": pipeline.source,
                "created_at": iso(pipeline.created_at),
                "updated_at": iso(self.world.pipeline_times(project, pipeline, now)[2]),
                "web_url": self.web(project, f"/-/pipelines/{pipeline.id}"),
            },
            "web_url": self.web(project, f"/-/jobs/{job.id}"),
            "project": {"ci_job_token_scope_enabled": False},
            "artifacts": [],
            "runner": runner,
            "runner_manager": None,
            "artifacts_expire_at": None,
            "archived": False,
            "tag_list": [],
        }
        if status == "failed":
            out["failure_reason"] = job.failure_reason or "script_failure"
        return self._hostile("job", out)

    # -- handlers: instance -------------------------------------------------------------------------------------
    def version(self, req: Request) -> Json:
        # The scenario's GitLab version: its cache keys follow that version's rules (sim/gitlab_keys.py).
        version = f"{self.world.scenario.gitlab_version}-ee"
        return {"version": version, "revision": GITLAB_REVISION, "kas": {"enabled": False}, "enterprise": True}

    def user(self, req: Request) -> Json:
        out = self.user_json(req.user)
        out.update({"created_at": iso(self.world.scenario.start.timestamp() - 500 * 86400), "bot": False})
        return out

    def token_self(self, req: Request) -> Json:
        """``GET /personal_access_tokens/self`` (GitLab >= 15.5): the calling personal access token, never its value.

        Job and OAuth tokens are not personal access tokens: GitLab answers 401 for them. Scopes and expiry come
        from ``sim.personal_tokens`` (tests change them to see ``cidash doctor`` react)."""
        token = req.headers.get("private-token") or req.arg("private_token") or ""
        info = self.sim.personal_tokens.get(token)
        if info is None:
            raise ApiError(401, {"message": "401 Unauthorized"})
        created = self.world.scenario.start.timestamp() - 200 * 86400
        return {
            "id": info.get("id", 1),
            "name": info.get("name", "cidash"),
            "revoked": bool(info.get("revoked", False)),
            "created_at": iso(created),
            "description": "",
            "scopes": list(info.get("scopes", ["api"])),
            "user_id": 1,
            "last_used_at": iso(self.now),
            "active": bool(info.get("active", True)),
            "expires_at": info.get("expires_at"),
        }

    def projects(self, req: Request) -> Json:
        items = [self.project_json(p, req.role) for p in sorted(self.world.projects.values(), key=lambda p: -p.id)]
        return self._paged(req, items)

    def project(self, req: Request) -> Json:
        return self.project_json(self.project_of(req), req.role)

    def group(self, req: Request) -> Json:
        gid = req.params["gid"]
        if gid not in (str(self.world.group_id), self.world.group_path):
            raise _message(404, "404 Group Not Found")
        return {
            "id": self.world.group_id,
            "name": "Platform",
            "path": self.world.group_path,
            "full_path": self.world.group_path,
            "full_name": "Platform",
            "parent_id": None,
            "visibility": "private",
            "web_url": f"{self.base()}/groups/{self.world.group_path}",
        }

    def group_projects(self, req: Request) -> Json:
        self.group(req)
        items = [self.project_json(p, req.role) for p in sorted(self.world.projects.values(), key=lambda p: p.id)]
        return self._paged(req, items)

    def _paged(self, req: Request, items: list[Any]) -> Response:
        chunk, headers = self.paginate(req, items)
        return Response(200, _dumps(chunk), headers)

    # -- pipelines ----------------------------------------------------------------------------------------------
    def pipelines(self, req: Request) -> Json:
        project = self.project_of(req)
        now = self.now
        filters: dict[str, float] = {}
        for name in ("updated_after", "updated_before", "created_after", "created_before"):
            value = req.arg(name)
            if value:
                try:
                    filters[name] = parse_time(value)
                except ValueError as exc:
                    raise ApiError(400, {"error": f"{name} is invalid"}) from exc
        order_by = req.arg("order_by", "id") or "id"
        sort = req.arg("sort", "desc") or "desc"
        if order_by not in ("id", "status", "ref", "updated_at", "user_id"):
            raise ApiError(400, {"error": "order_by does not have a valid value"})
        if sort not in ("asc", "desc"):
            raise ApiError(400, {"error": "sort does not have a valid value"})
        ref, status, source, sha = req.arg("ref"), req.arg("status"), req.arg("source"), req.arg("sha")
        scope = req.arg("scope")
        selected: list[tuple[SimPipeline, str, float]] = []
        for p in project.pipelines.values():
            if p.created_at > now:
                continue
            if ref and p.ref != ref:
                continue
            if sha and p.sha != sha:
                continue
            if source and p.source != source:
                continue
            if "created_after" in filters and p.created_at <= filters["created_after"]:
                continue
            if "created_before" in filters and p.created_at >= filters["created_before"]:
                continue
            state, _, _, updated = self.world.pipeline_state(project, p, now)
            updated = round(updated, 3)
            if status and state != status:
                continue
            if scope in ("running", "pending") and state != scope:
                continue
            if scope == "finished" and state not in ("success", "failed", "canceled", "skipped"):
                continue
            if "updated_after" in filters and updated <= filters["updated_after"]:
                continue
            if "updated_before" in filters and updated >= filters["updated_before"]:
                continue
            selected.append((p, state, updated))
        keyfn: Callable[[tuple[SimPipeline, str, float]], Any] = {
            "id": lambda x: x[0].id,
            "status": lambda x: (x[1], x[0].id),
            "ref": lambda x: (x[0].ref, x[0].id),
            "updated_at": lambda x: (x[2], x[0].id),
            "user_id": lambda x: (x[0].user, x[0].id),
        }[order_by]
        selected.sort(key=keyfn, reverse=sort == "desc")
        chunk, headers = self.paginate(req, selected)
        body = [self.pipeline_basic(project, p, now) for p, _, _ in chunk]
        return Response(200, _dumps(body), headers)

    def _pipeline(self, req: Request, project: SimProject) -> SimPipeline:
        pid = req.params["pipeline_id"]
        pipeline = project.pipelines.get(int(pid)) if pid.isdigit() else None
        if pipeline is None or pipeline.created_at > self.now:
            raise _message(404, "404 Not found")
        return pipeline

    def pipeline(self, req: Request) -> Json:
        project = self.project_of(req)
        return self.pipeline_detail(project, self._pipeline(req, project), self.now)

    def pipeline_bridges(self, req: Request) -> Json:
        project = self.project_of(req)
        self._pipeline(req, project)
        return self._paged(req, [])

    def pipeline_variables(self, req: Request) -> Json:
        project = self.project_of(req)
        pipeline = self._pipeline(req, project)
        return [
            {"key": v["key"], "value": v.get("value", ""), "variable_type": v.get("variable_type", "env_var")}
            for v in pipeline.variables
        ]

    def _scopes(self, req: Request) -> set[str] | None:
        scopes = req.args("scope")
        if not scopes:
            return None
        bad = [s for s in scopes if s not in JOB_SCOPES]
        if bad:
            raise ApiError(400, {"error": "scope does not have a valid value"})
        return set(scopes)

    def pipeline_jobs(self, req: Request) -> Json:
        project = self.project_of(req)
        pipeline = self._pipeline(req, project)
        now = self.now
        include_retried = (req.arg("include_retried") or "").lower() in ("true", "1", "yes")
        scopes = self._scopes(req)
        jobs = [j for j in self.world.pipeline_jobs(project, pipeline) if include_retried or not j.retried]
        jobs.sort(key=lambda j: j.id)
        items = [self.job_json(project, j, now) for j in jobs]
        if scopes is not None:
            items = [i for i in items if i["status"] in scopes]
        return self._paged(req, items)

    def create_pipeline(self, req: Request) -> Json:
        project = self.project_of(req)
        self.require_write(req)
        body = req.json_body()
        ref = body.get("ref") or req.arg("ref")
        if not ref:
            raise ApiError(400, {"error": "ref is missing"})
        variables_raw = body.get("variables") or []
        if not isinstance(variables_raw, list):
            raise ApiError(400, {"error": "variables is invalid"})
        variables: list[dict[str, str]] = []
        for v in variables_raw:
            if not isinstance(v, dict) or "key" not in v:
                raise ApiError(400, {"error": "variables[key] is missing"})
            variables.append(
                {
                    "key": str(v["key"]),
                    "value": str(v.get("value", "")),
                    "variable_type": str(v.get("variable_type", "env_var")),
                }
            )
        if str(ref) not in project.heads:
            raise ApiError(400, {"message": {"base": ["Reference not found"]}})
        pipeline = self.world.create_pipeline(project, str(ref), variables, req.user)
        return Response(201, _dumps(self.pipeline_detail(project, pipeline, self.now)), {})

    # -- jobs ---------------------------------------------------------------------------------------------------
    def project_jobs(self, req: Request) -> Json:
        project = self.project_of(req)
        now = self.now
        scopes = self._scopes(req)
        jobs = sorted((j for j in project.jobs.values() if j.created_at <= now), key=lambda j: -j.id)
        if scopes is not None:
            jobs = [j for j in jobs if j.status_at(now) in scopes]
        if req.arg("pagination") == "keyset":
            return self._keyset_jobs(req, project, jobs, now)
        chunk, headers = self.paginate(req, jobs)
        return Response(200, _dumps([self.job_json(project, j, now) for j in chunk]), headers)

    def _keyset_jobs(self, req: Request, project: SimProject, jobs: list[SimJob], now: float) -> Response:
        if (req.arg("order_by") or "id") != "id" or (req.arg("sort") or "desc") != "desc":
            raise ApiError(405, {"error": "Keyset pagination is not yet available for this type of request"})
        per_page = min(_int(req.arg("per_page"), 20, minimum=1), MAX_PER_PAGE)
        before: int | None = None
        cursor = req.arg("cursor")
        if cursor:
            try:
                data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
                before = int(data["id"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(400, {"error": "cursor is invalid"}) from exc
        elif req.arg("id_before"):
            before = _int(req.arg("id_before"), 0)
        if before is not None:
            jobs = [j for j in jobs if j.id < before]
        chunk = jobs[:per_page]
        headers = {"x-per-page": str(per_page)}
        if len(jobs) > per_page:
            last = chunk[-1].id
            token = base64.urlsafe_b64encode(json.dumps({"id": str(last), "_kd": "n"}).encode()).decode().rstrip("=")
            query = [(k, v) for k, vs in req.query.items() if k not in ("cursor", "id_before", "page") for v in vs]
            query.append(("cursor", token))
            url = f"{self.base()}{req.path}?{urlencode(sorted(query))}"
            headers["Link"] = f'<{url}>; rel="next"'
        return Response(200, _dumps([self.job_json(project, j, now) for j in chunk]), headers)

    def _job(self, req: Request, project: SimProject) -> SimJob:
        jid = req.params["job_id"]
        job = project.jobs.get(int(jid)) if jid.isdigit() else None
        if job is None or job.created_at > self.now:
            raise _message(404, "404 Not found")
        return job

    def job(self, req: Request) -> Json:
        project = self.project_of(req)
        return self.job_json(project, self._job(req, project), self.now)

    def trace(self, req: Request) -> Json:
        project = self.project_of(req)
        job = self._job(req, project)
        body = render_trace(job, project.path, project.id, self.now)
        if self.world.scenario.hostile_strings:
            body = hostile_strings.hostile_trace(body)
        return Response(200, body, {}, content_type="text/plain; charset=utf-8")

    def retry(self, req: Request) -> Json:
        project = self.project_of(req)
        job = self._job(req, project)
        self.require_write(req)
        now = self.now
        if job.retried or job.status_at(now) not in ("success", "failed", "canceled"):
            raise _message(403, "403 Forbidden - Job is not retryable")
        new = self.world.retry_job(project, job, req.user)
        return Response(201, _dumps(self.job_json(project, new, self.now)), {})

    def play(self, req: Request) -> Json:
        project = self.project_of(req)
        job = self._job(req, project)
        self.require_write(req)
        if job.status_at(self.now) != "manual":
            raise _message(400, "400 Bad request - Unplayable Job")
        played = self.world.play_job(project, job, req.user)
        return Response(200, _dumps(self.job_json(project, played, self.now)), {})

    def cancel(self, req: Request) -> Json:
        project = self.project_of(req)
        job = self._job(req, project)
        self.require_write(req)
        self.world.cancel_job(job)
        return Response(201, _dumps(self.job_json(project, job, self.now)), {})

    # -- repository -----------------------------------------------------------------------------------------------
    def _commit_for(self, req: Request, project: SimProject, *, required: bool = True) -> SimCommit:
        ref = req.arg("ref")
        if not ref:
            if required:
                raise ApiError(400, {"error": "ref is missing, ref is empty"})
            ref = project.default_branch
        commit = self.world.resolve_ref(project, ref)
        if commit is None:
            raise _message(404, "404 Commit Not Found")
        return commit

    def _file(self, req: Request, *, required: bool) -> tuple[SimProject, SimCommit, str, bytes, dict[str, str]]:
        project = self.project_of(req)
        commit = self._commit_for(req, project, required=required)
        path = req.params["file_path"]
        data = commit.files.get(path)
        if data is None:
            raise _message(404, "404 File Not Found")
        blob_id, sha256 = self.world.blob(data)
        headers = {
            "X-Gitlab-Blob-Id": blob_id,
            "X-Gitlab-Commit-Id": commit.sha,
            "X-Gitlab-Content-Sha256": sha256,
            "X-Gitlab-Encoding": "base64",
            "X-Gitlab-Execute-Filemode": "false",
            "X-Gitlab-File-Name": path.rsplit("/", 1)[-1],
            "X-Gitlab-File-Path": path,
            "X-Gitlab-Last-Commit-Id": commit.last_change.get(path, commit.sha),
            "X-Gitlab-Ref": req.arg("ref") or project.default_branch,
            "X-Gitlab-Size": str(len(data)),
        }
        return project, commit, path, data, headers

    def file(self, req: Request) -> Json:
        _, commit, path, data, headers = self._file(req, required=True)
        body = {
            "file_name": headers["X-Gitlab-File-Name"],
            "file_path": path,
            "size": len(data),
            "encoding": "base64",
            "content_sha256": headers["X-Gitlab-Content-Sha256"],
            "ref": headers["X-Gitlab-Ref"],
            "blob_id": headers["X-Gitlab-Blob-Id"],
            "commit_id": commit.sha,
            "last_commit_id": headers["X-Gitlab-Last-Commit-Id"],
            "execute_filemode": False,
            "content": base64.b64encode(data).decode(),
        }
        return Response(200, _dumps(body), headers)

    def file_raw(self, req: Request) -> Json:
        _, _, _, data, headers = self._file(req, required=False)
        return Response(200, data, headers, content_type="text/plain; charset=utf-8")

    def commits(self, req: Request) -> Json:
        project = self.project_of(req)
        ref = req.arg("ref_name") or project.default_branch
        if (req.arg("all") or "").lower() == "true":
            commits = sorted(project.commits.values(), key=lambda c: (-c.at, c.sha))
        else:
            if self.world.resolve_ref(project, ref) is None:
                raise _message(404, "404 Commit Not Found")
            commits = self.world.history(project, ref)
        since, until, path = req.arg("since"), req.arg("until"), req.arg("path")
        try:
            since_t = parse_time(since) if since else None
            until_t = parse_time(until) if until else None
        except ValueError as exc:
            raise ApiError(400, {"error": "since is invalid"}) from exc
        out = []
        now = self.now
        for c in commits:
            if c.at > now:
                continue
            if since_t is not None and c.at < since_t:
                continue
            if until_t is not None and c.at > until_t:
                continue
            if path and path not in c.changed:
                continue
            out.append(self.commit_json(project, c))
        return self._paged(req, out)

    def commit(self, req: Request) -> Json:
        project = self.project_of(req)
        commit = self.world.resolve_ref(project, req.params["sha"])
        if commit is None:
            raise _message(404, "404 Commit Not Found")
        out = self.commit_json(project, commit)
        out["stats"] = {
            "additions": 3 * len(commit.changed),
            "deletions": len(commit.changed),
            "total": 4 * len(commit.changed),
        }
        out["status"] = None
        out["project_id"] = project.id
        return out

    def _ancestors(self, project: SimProject, commit: SimCommit | None) -> list[SimCommit]:
        out: list[SimCommit] = []
        while commit is not None:
            out.append(commit)
            commit = project.commits.get(commit.parent) if commit.parent else None
        return out

    def compare(self, req: Request) -> Json:
        """``GET /projects/:id/repository/compare?from=A&to=B[&straight=true]`` as GitLab answers it: ``commit``
        (the newest of the range), ``commits`` (reachable from ``to`` and not from ``from``, oldest first),
        ``diffs`` (one per changed path: ``old_path``, ``new_path``, ``new_file``, ``renamed_file``,
        ``deleted_file``, modes, ``diff``), ``compare_timeout``, ``compare_same_ref``, ``web_url``; past
        :data:`COMPARE_MAX_FILES` changed files the list is cut and ``compare_timeout`` is true (GitLab sets it
        from the diff collection's ``overflow?``). ``straight=false`` (the
        default) diffs the merge base against ``to`` (``from...to``); ``true`` diffs ``from`` against ``to``."""
        project = self.project_of(req)
        from_ref, to_ref = req.arg("from"), req.arg("to")
        if not from_ref or not to_ref:
            raise ApiError(400, {"error": "from is missing, to is missing"})
        a = self.world.resolve_ref(project, from_ref)
        b = self.world.resolve_ref(project, to_ref)
        if a is None or b is None:
            raise _message(404, "404 Ref Not Found")
        straight = (req.arg("straight") or "").lower() == "true"
        a_line = self._ancestors(project, a)
        a_shas = {c.sha for c in a_line}
        commits = [c for c in self._ancestors(project, b) if c.sha not in a_shas]
        base: SimCommit | None = a
        if not straight:
            base = next((c for c in self._ancestors(project, b) if c.sha in a_shas), None)
        old_files = base.files if base is not None else {}
        diffs = []
        for path in sorted(set(old_files) | set(b.files)):
            before, after = old_files.get(path), b.files.get(path)
            if before == after:
                continue
            diffs.append(
                {
                    "old_path": path,
                    "new_path": path,
                    "a_mode": "0" if before is None else "100644",
                    "b_mode": "0" if after is None else "100644",
                    "new_file": before is None,
                    "renamed_file": False,
                    "deleted_file": after is None,
                    "diff": f"@@ -1 +1 @@\n-{len(before or b'')} bytes\n+{len(after or b'')} bytes\n",
                }
            )
        overflow = len(diffs) > COMPARE_MAX_FILES
        return {
            "commit": self.commit_json(project, commits[0]) if commits else None,
            "commits": [self.commit_json(project, c) for c in reversed(commits)],
            "diffs": diffs[:COMPARE_MAX_FILES],
            "compare_timeout": overflow,  # GitLab: ``compare.diffs.diffs.overflow?`` (lib/api/entities/compare.rb)
            "compare_same_ref": a.sha == b.sha,
            "web_url": self.web(project, f"/-/compare/{a.sha}...{b.sha}"),
        }

    def _branch_json(self, project: SimProject, name: str) -> dict[str, Any] | None:
        commit = self.world.resolve_ref(project, name)
        if name not in project.heads or commit is None or commit.at > self.now:
            return None
        return {
            "name": name,
            "merged": False,
            "protected": name in project.protected,
            "default": name == project.default_branch,
            "developers_can_push": False,
            "developers_can_merge": False,
            "can_push": True,
            "web_url": self.web(project, f"/-/tree/{quote(name, safe='')}"),
            "commit": self.commit_json(project, commit),
        }

    def branches(self, req: Request) -> Json:
        project = self.project_of(req)
        items = [b for name in sorted(project.heads) if (b := self._branch_json(project, name)) is not None]
        return self._paged(req, items)

    def branch(self, req: Request) -> Json:
        project = self.project_of(req)
        item = self._branch_json(project, req.params["branch"])
        if item is None:
            raise _message(404, "404 Branch Not Found")
        return item

    # -- registry -------------------------------------------------------------------------------------------------
    def _repo_json(self, project: SimProject, with_tags: bool, with_count: bool) -> dict[str, Any]:
        host = self.world.scenario.registry_host
        out: dict[str, Any] = {
            "id": project.registry_repo_id,
            "name": "ci",
            "path": f"{project.path}/ci",
            "project_id": project.id,
            "location": f"{host}/{project.path}/ci",
            "created_at": iso(project.registry_created_at),
            "cleanup_policy_started_at": None,
            "status": None,
        }
        if with_count:
            out["tags_count"] = len(self._visible_tags(project))
        if with_tags:
            out["tags"] = [self._tag_basic(project, t) for t in self._visible_tags(project)]
        return out

    def _visible_tags(self, project: SimProject) -> list[str]:
        now = self.now
        names = sorted(t.name for t in project.tags.values() if t.created_at <= now)
        if names and project.default_branch in project.heads:
            names.append("latest")
        return sorted(names)

    def _tag_basic(self, project: SimProject, name: str) -> dict[str, str]:
        host = self.world.scenario.registry_host
        return {"name": name, "path": f"{project.path}/ci:{name}", "location": f"{host}/{project.path}/ci:{name}"}

    def _latest(self, project: SimProject) -> str | None:
        now = self.now
        tags = [t.view(now) for t in project.tags.values() if t.created_at <= now]
        if not tags:
            return None
        return max(tags, key=lambda t: (t.created_at, t.name)).name

    def registry_repositories(self, req: Request) -> Json:
        project = self.project_of(req)
        if project.registry_repo_id is None:
            return self._paged(req, [])
        tags = (req.arg("tags") or "").lower() == "true"
        count = (req.arg("tags_count") or "").lower() == "true"
        return self._paged(req, [self._repo_json(project, tags, count)])

    def registry_repository(self, req: Request) -> Json:
        rid = req.params["repository_id"]
        for project in self.world.projects.values():
            if str(project.registry_repo_id) == rid:
                tags = (req.arg("tags") or "").lower() == "true"
                count = (req.arg("tags_count") or "").lower() == "true"
                return self._repo_json(project, tags, count)
        raise _message(404, "404 Repository Not Found")

    def _registry_project(self, req: Request) -> SimProject:
        project = self.project_of(req)
        if str(project.registry_repo_id) != req.params["repository_id"]:
            raise _message(404, "404 Repository Not Found")
        return project

    def registry_tags(self, req: Request) -> Json:
        project = self._registry_project(req)
        return self._paged(req, [self._tag_basic(project, n) for n in self._visible_tags(project)])

    def registry_tag(self, req: Request) -> Json:
        project = self._registry_project(req)
        name = req.params["tag_name"]
        real = self._latest(project) if name == "latest" else name
        tag = project.tags.get(real or "")
        if tag is None or tag.created_at > self.now:
            raise _message(404, "404 Tag Not Found")
        tag = tag.view(self.now)
        out: dict[str, Any] = dict(self._tag_basic(project, name))
        out.update(
            {
                "revision": tag.revision,
                "short_revision": tag.revision[:9],
                "digest": tag.digest,
                "created_at": iso(tag.created_at),
                "total_size": tag.total_size,
            }
        )
        return self._hostile("tag", out)

    def _resource_group_items(self, project: SimProject) -> list[dict[str, Any]]:
        now = self.now
        return [
            {"id": i + 1, "key": key, "process_mode": "unordered", "created_at": iso(at), "updated_at": iso(at)}
            for i, (key, at) in enumerate(sorted(project.resource_groups.items()))
            if at <= now
        ]

    def resource_groups(self, req: Request) -> Json:
        return self._paged(req, self._resource_group_items(self.project_of(req)))

    def resource_group(self, req: Request) -> Json:
        for item in self._resource_group_items(self.project_of(req)):
            if item["key"] == req.params["key"]:
                return item
        raise _message(404, "404 Not found")

    def resource_group_upcoming(self, req: Request) -> Json:
        project = self.project_of(req)
        self.resource_group(req)
        now = self.now
        jobs = [
            j
            for j in project.jobs.values()
            if j.resource_group == req.params["key"]
            and j.status_at(now) in ("waiting_for_resource", "created", "pending")
        ]
        return self._paged(req, [self.job_json(project, j, now) for j in sorted(jobs, key=lambda j: j.id)])

    def jwt_auth(self, req: Request) -> Json:
        return {"token": "sim-registry-token", "expires_in": 900}

    def manifest(self, req: Request) -> Json:
        name, reference = req.params["name"], req.params["reference"]
        for project in self.world.projects.values():
            if f"{project.path}/ci" != name:
                continue
            real = self._latest(project) if reference == "latest" else reference
            tag = project.tags.get(real or "")
            if tag is not None and tag.created_at <= self.now:
                tag = tag.view(self.now)
                body = _dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"})
                return Response(
                    200,
                    body,
                    {"Docker-Content-Digest": tag.digest},
                    content_type="application/vnd.oci.image.manifest.v1+json",
                )
        raise ApiError(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})


def _int(value: str | None, default: int, *, minimum: int | None = None) -> int:
    try:
        n = int(value) if value not in (None, "") else default
    except ValueError:
        n = default
    if minimum is not None and n < minimum:
        n = minimum
    return n


def _dumps(data: Json) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "nginx"
    sys_version = ""
    sim: SimulatedGitLab  # set on the subclass per server

    def log_message(self, format: str, *args: Any) -> None:
        del format, args

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        sim = self.sim
        body = self._read_body()
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path.startswith("/__sim/"):
            self._sim_control(method, path)
            return
        template, handler, params, path_unknown = sim.api.match(method, path)
        req = Request(method=method, path=path, query=query, headers=headers, body=body, params=params)
        sim.api._local.host = headers.get("host")
        decision = sim.fault_state.decide(method, template, path)
        if decision.delay_s > 0:
            time.sleep(decision.delay_s)
        base_delay = sim.latency_ms / 1000.0
        if sim.jitter_ms:
            with sim.rng_lock:
                base_delay += sim.rng.uniform(0.0, sim.jitter_ms) / 1000.0
        if base_delay > 0:
            time.sleep(base_delay)
        extra: dict[str, str] = {}
        if decision.redirect_to is not None:  # a front-end redirect: before authentication
            target = self.path if split.query else path
            location = decision.redirect_to.replace("{path}", target)
            self._send(
                method, template, path, Response(decision.redirect_status, b"", {"Location": location}), decision
            )
            return
        if decision.status is not None and decision.status >= 500:
            # a proxy-level failure (load balancer, Workhorse): no application headers, HTML body for 502/503
            self._send(method, template, path, self._gateway_error(decision.status), decision)
            return
        try:
            self._authenticate(req)
            extra.update(sim.rate_limiter.check(req.user))
            if decision.status is not None:
                raise self._fault_error(decision)
            if handler is None:
                if path_unknown:
                    raise ApiError(404, {"error": "404 Not Found"})
                raise ApiError(405, {"error": "405 Not Allowed"})
            with sim.world.lock:
                result = handler(sim.api, req)
            response = result if isinstance(result, Response) else Response(200, _dumps(result), {})
        except ApiError as exc:
            response = Response(exc.status, _dumps(exc.body), exc.headers)
        except Exception as exc:  # a simulator bug: answer like GitLab would, keep serving
            response = Response(500, _dumps({"message": f"500 Internal Server Error ({type(exc).__name__})"}), {})
        response.headers.update(extra)
        self._send(method, template, path, response, decision)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                try:
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    size = 0
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _authenticate(self, req: Request) -> None:
        sim = self.sim
        token = req.headers.get("private-token") or req.headers.get("job-token") or req.arg("private_token")
        auth = req.headers.get("authorization", "")
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if req.path.startswith("/v2/") or req.path == "/jwt/auth":
            req.user, req.role = "demo", "reporter"
            return
        if token and token == sim.token:
            req.user, req.role = "demo", "maintainer"
        elif token and sim.readonly_token and token == sim.readonly_token:
            req.user, req.role = "reporter", "reporter"
        else:
            raise ApiError(401, {"message": "401 Unauthorized"})

    @staticmethod
    def _gateway_error(status: int) -> Response:
        if status == 500:
            return Response(500, _dumps({"message": "500 Internal Server Error"}), {})
        reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}.get(status, "Error")
        html = f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>\n"
        return Response(status, html.encode(), {}, content_type="text/html")

    def _fault_error(self, decision: FaultDecision) -> ApiError:
        status = decision.status or 500
        if status == 429:
            return ApiError(
                429,
                {"message": "429 Too Many Requests"},
                {"Retry-After": str(math.ceil(decision.retry_after))},
            )
        text = {500: "500 Internal Server Error", 502: "502 Bad Gateway", 503: "503 Service Unavailable"}.get(
            status, f"{status} Error"
        )
        return ApiError(status, {"message": text})

    def _send(self, method: str, template: str, path: str, response: Response, decision: FaultDecision) -> None:
        sim = self.sim
        if decision.page_loop and response.status == 200:
            response = self._looped(response)
        body = response.body
        if decision.truncate_bytes is not None and response.status == 200:
            body = body[: decision.truncate_bytes]
        payload = b"" if method == "HEAD" else body
        if decision.reset:
            payload = body[: max(1, len(body) // 2)] if body else b""
        # account before answering, so a client that got its response sees it counted
        sim.stats.record(method, template, path, response.status, len(payload))
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=0, private, must-revalidate")
        self.send_header("X-Request-Id", f"sim-{sim.stats.total_requests:08d}")
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if method == "HEAD":
            return
        if decision.reset:
            try:
                self.wfile.write(payload)
                self.wfile.flush()
            finally:
                self._reset()
            return
        if decision.slow_bytes_per_s:
            chunk = max(1, int(decision.slow_bytes_per_s / 20))
            for i in range(0, len(body), chunk):
                self.wfile.write(body[i : i + chunk])
                self.wfile.flush()
                time.sleep(chunk / decision.slow_bytes_per_s)
        else:
            self.wfile.write(body)

    def _looped(self, response: Response) -> Response:
        """The page-loop fault: the pagination headers point back at this very page (even on the last one)."""
        headers = dict(response.headers)
        if "x-next-page" in headers:
            headers["x-next-page"] = headers.get("x-page") or "1"
        here = f"{self.sim.api.base()}{self.path}"
        links = [part for part in headers.get("Link", "").split(", ") if part and 'rel="next"' not in part]
        headers["Link"] = ", ".join([f'<{here}>; rel="next"', *links])
        return Response(response.status, response.body, headers, content_type=response.content_type)

    def _reset(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()

    def _sim_control(self, method: str, path: str) -> None:
        sim = self.sim
        if path == "/__sim/stats" and method in ("GET", "HEAD"):
            body = _dumps(sim.stats.as_dict())
            status = 200
        elif path == "/__sim/stats/reset" and method == "POST":
            sim.stats.reset()
            body, status = _dumps({"reset": True}), 200
        elif path == "/__sim/truth" and method == "GET":
            t = sim.truth
            body = _dumps(
                {
                    "migration_at": t.migration_at.isoformat(),
                    "baseline_startup_median": t.baseline_startup_median,
                    "candidate_startup_median": t.candidate_startup_median,
                    "startup_improvement": t.startup_improvement,
                    "baseline_image_tag": t.baseline_image_tag,
                    "candidate_image_tag": t.candidate_image_tag,
                }
            )
            status = 200
        else:
            body, status = _dumps({"error": "404 Not Found"}), 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Python's default listen backlog is 5: a client opening a pool of 16+ connections at once would see some
    # refused or stalled. GitLab's front end accepts far more.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return  # a client went away (or a reset fault): not worth a traceback
        super().handle_error(request, client_address)


class RateLimiter:
    """Fixed windows of ``window`` seconds per user; past ``budget`` requests: 429 with ``Retry-After``."""

    def __init__(self, budget: int | None, window: float = 60.0, advertised: int | None = 2000) -> None:
        self.budget = budget
        self.window = window
        #: None: no RateLimit-* headers at all (a self-managed GitLab with its throttles off, its default).
        self.limit = budget if budget is not None else advertised
        self._counts: dict[str, int] = {}
        self._window_start = time.time()
        self._lock = threading.Lock()

    def check(self, user: str) -> dict[str, str]:
        with self._lock:
            now = time.time()
            if now - self._window_start >= self.window:
                self._window_start = now
                self._counts.clear()
            count = self._counts.get(user, 0) + 1
            self._counts[user] = count
            reset = self._window_start + self.window
            if self.limit is None:
                return {}
            headers = {
                "RateLimit-Limit": str(self.limit),
                "RateLimit-Observed": str(count),
                "RateLimit-Remaining": str(max(0, self.limit - count)),
                "RateLimit-Reset": str(math.ceil(reset)),
                "RateLimit-ResetTime": datetime.fromtimestamp(reset, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
            }
        if self.budget is not None and count > self.budget:
            headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
            raise ApiError(429, {"message": "429 Too Many Requests"}, headers)
        return headers


class SimulatedGitLab:
    """A running simulated GitLab. Use as a context manager (starts and stops the server)."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        token: str = "demo-token",
        readonly_token: str | None = "demo-readonly-token",
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        faults: FaultPlan | None = None,
        rate_limit: int | None = None,
        rate_limit_window: float = 60.0,
        rate_limit_advertised: int | None = 2000,
        time_scale: float = 0.0,
        world: World | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        clock_start: datetime | None = None,
        hostile_numbers: HostileNumbers | None = None,
    ) -> None:
        if scenario is None:
            scenario = Scenario() if seed is None else Scenario(seed=seed)
        self.scenario = scenario
        self.world = (
            world if world is not None else build_world(scenario, time_scale=time_scale, clock_start=clock_start)
        )
        if world is not None:
            self.world.set_time_scale(time_scale)
        self.token = token
        self.readonly_token = readonly_token
        # What GET /personal_access_tokens/self says about each token (expires_at: an ISO date or None).
        expires = (scenario.end + timedelta(days=90)).date().isoformat()
        self.personal_tokens: dict[str, dict[str, Any]] = {token: {"id": 1, "scopes": ["api"], "expires_at": expires}}
        if readonly_token:
            self.personal_tokens[readonly_token] = {"id": 2, "scopes": ["read_api"], "expires_at": expires}
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.rng = random.Random(scenario.seed)
        self.rng_lock = threading.Lock()
        self.fault_state = FaultState(faults or FaultPlan())
        self.hostile_numbers = hostile_numbers
        self.rate_limiter = RateLimiter(rate_limit, rate_limit_window, rate_limit_advertised)
        self.stats = Stats()
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.api = Api(self)

    # -- facts for callers --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def project_path(self) -> str:
        return self.scenario.project_path

    @property
    def project_id(self) -> int:
        return self.scenario.project_id

    @property
    def truth(self) -> Truth:
        assert self.world.truth is not None
        return self.world.truth

    def set_faults(self, plan: FaultPlan | None) -> None:
        self.fault_state = FaultState(plan or FaultPlan())

    def advance(self, seconds: float) -> float:
        return self.world.advance(seconds)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.world.now(), UTC)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> SimulatedGitLab:
        handler = type("BoundHandler", (_Handler,), {"sim": self})
        server = _Server((self.host, self.port), handler)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sim-gitlab-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Run in the foreground (``cidash simulate``) until interrupted."""
        if self._server is None:
            self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> SimulatedGitLab:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

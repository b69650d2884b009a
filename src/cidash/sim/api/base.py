"""What every API family shares: the request/response types, GitLab's pagination and the entity JSON.

Handlers are HTTP-free (a :class:`Request` in, a :class:`Response` or JSON-able value out); :mod:`cidash.sim.http`
does the wire. One module per resource family (``instance``, ``pipelines``, ``traces``, ``repository``,
``registry``, ``mutations``) adds its handlers to :class:`ApiBase`; :class:`cidash.sim.api.Api` combines them and
holds the route table.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlencode

from cidash.sim import hostile_strings
from cidash.sim.hostile_numbers import HostileNumbers
from cidash.sim.world import SimCommit, SimJob, SimPipeline, SimProject, World

GITLAB_VERSION = "18.6.0-ee"  # the default Scenario.gitlab_version, as /version prints it
GITLAB_REVISION = "2b1c0f3a9e1"
MAX_PER_PAGE = 100
COUNT_LIMIT = 10_000

Json = Any
_HOST = re.compile(r"[A-Za-z0-9.\-\[\]:]+")


def iso(t: float | None) -> str | None:
    """GitLab's timestamp format: ``2026-11-02T10:15:03.123Z``."""
    if t is None:
        return None
    # isoformat's milliseconds are the microseconds // 1000, as GitLab prints them (and faster than strftime)
    return datetime.fromtimestamp(round(t, 3), UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


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


class Host(Protocol):
    """What the API needs of the server that hosts it (:class:`cidash.sim.http.SimulatedGitLab`)."""

    world: World
    personal_tokens: dict[str, dict[str, Any]]
    hostile_numbers: HostileNumbers | None

    @property
    def url(self) -> str: ...


Handler = Callable[[Any, Request], "Response | Json"]


class ApiBase:
    """Routing, helpers and entity JSON over a :class:`World` (HTTP-free, so it is easy to reason about)."""

    def __init__(self, sim: Host) -> None:
        self.sim = sim
        self.world = sim.world
        self._local = threading.local()
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []

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
        if host and _HOST.fullmatch(host):
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
            "namespace": self.namespace_json(project.namespace or self.world.group_path),
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

    def namespace_json(self, full_path: str) -> dict[str, Any]:
        """A group as a project's ``namespace`` shows it (the world's group or one of its subgroups)."""
        top = full_path == self.world.group_path
        path = full_path.rsplit("/", 1)[-1]
        return {
            "id": self.world.group_id if top else self.world.subgroups[full_path],
            "name": path.capitalize(),
            "path": path,
            "kind": "group",
            "full_path": full_path,
            "parent_id": None if top else self.world.group_id,
            "avatar_url": None,
            "web_url": f"{self.base()}/groups/{full_path}",
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

    @staticmethod
    def pipeline_durations(
        pipeline: SimPipeline, started: float | None, finished: float | None, now: float
    ) -> tuple[int | None, float | None]:
        """(duration, queued_duration) as the REST detail and GraphQL both give them (the same model's values)."""
        if started is None:
            return None, None
        return round((finished if finished is not None else now) - started), round(started - pipeline.created_at, 3)

    def pipeline_detail(self, project: SimProject, pipeline: SimPipeline, now: float) -> dict[str, Any]:
        started, finished, _updated = self.world.pipeline_times(project, pipeline, now)
        status = self.world.pipeline_status(project, pipeline, now)
        out = self.pipeline_basic(project, pipeline, now)
        duration, queued = self.pipeline_durations(pipeline, started, finished, now)
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

    def _paged(self, req: Request, items: list[Any]) -> Response:
        chunk, headers = self.paginate(req, items)
        return Response(200, _dumps(chunk), headers)

    def _pipeline(self, req: Request, project: SimProject) -> SimPipeline:
        pid = req.params["pipeline_id"]
        pipeline = project.pipelines.get(int(pid)) if pid.isdigit() else None
        if pipeline is None or pipeline.created_at > self.now:
            raise _message(404, "404 Not found")
        return pipeline

    def _job(self, req: Request, project: SimProject) -> SimJob:
        jid = req.params["job_id"]
        job = project.jobs.get(int(jid)) if jid.isdigit() else None
        if job is None or job.created_at > self.now:
            raise _message(404, "404 Not found")
        return job


def _int(value: str | None, default: int, *, minimum: int | None = None) -> int:
    try:
        n = int(value) if value not in (None, "") else default
    except ValueError:
        n = default
    if minimum is not None and n < minimum:
        n = minimum
    return n


#: :data:`~cidash.sim.hostile_numbers.RAW_JSON_MARK` as ``json.dumps`` writes it, inside its string's quotes.
_RAW_JSON = re.compile(r'"\\u0000cidash-sim-raw-json:([^"]*)"')


def _dumps(data: Json) -> bytes:
    text = json.dumps(data, separators=(",", ":"))
    if "\\u0000cidash-sim-raw-json:" in text:  # a hostile value written verbatim (hostile_numbers.raw_json)
        text = _RAW_JSON.sub(lambda m: m[1], text)
    return text.encode()

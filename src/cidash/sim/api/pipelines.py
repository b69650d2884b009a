"""Pipelines, jobs (offset and keyset pagination) and resource groups, read side."""

from __future__ import annotations

import base64
import json
from bisect import bisect_right
from collections.abc import Callable
from itertools import islice
from typing import Any
from urllib.parse import urlencode

from cidash.sim.api.base import (
    MAX_PER_PAGE,
    ApiBase,
    ApiError,
    Json,
    Request,
    Response,
    _dumps,
    _int,
    _message,
    iso,
    parse_time,
)
from cidash.sim.world import JOB_SCOPES, SimJob, SimPipeline, SimProject


class PipelinesApi(ApiBase):
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

        def build() -> list[tuple[SimPipeline, str, float]]:
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
            return selected

        # the pages of one listing share its filtered, sorted items (built again after any change, see World.listing)
        key = ("pipelines", ref, status, source, sha, scope, tuple(sorted(filters.items())), order_by, sort)
        selected = self.world.listing(project, key, now, build)
        chunk, headers = self.paginate(req, selected)
        body = [self.pipeline_basic(project, p, now) for p, _, _ in chunk]
        return Response(200, _dumps(body), headers)

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

    # -- jobs ---------------------------------------------------------------------------------------------------
    def project_jobs(self, req: Request) -> Json:
        project = self.project_of(req)
        now = self.now
        scopes = self._scopes(req)
        ordered, keys = self.world.jobs_newest_first(project)

        def visible(j: SimJob) -> bool:
            return j.created_at <= now and (scopes is None or j.status_at(now) in scopes)

        if req.arg("pagination") == "keyset":
            return self._keyset_jobs(req, project, ordered, keys, visible, now)
        jobs = [j for j in ordered if visible(j)]
        chunk, headers = self.paginate(req, jobs)
        return Response(200, _dumps([self.job_json(project, j, now) for j in chunk]), headers)

    def _keyset_jobs(  # noqa: PLR0917
        self,
        req: Request,
        project: SimProject,
        ordered: list[SimJob],
        keys: list[int],
        visible: Callable[[SimJob], bool],
        now: float,
    ) -> Response:
        """One keyset page: the newest ``per_page`` visible jobs below the cursor's id, found from the index (a
        bisect to the cursor, then only as many jobs as the page needs), so a page costs the same at any depth."""
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
        start = 0 if before is None else bisect_right(keys, -before)
        page: list[SimJob] = []
        for j in islice(ordered, start, None):
            if visible(j):
                page.append(j)
                if len(page) > per_page:
                    break
        chunk = page[:per_page]
        headers = {"x-per-page": str(per_page)}
        if len(page) > per_page:
            last = chunk[-1].id
            token = base64.urlsafe_b64encode(json.dumps({"id": str(last), "_kd": "n"}).encode()).decode().rstrip("=")
            query = [(k, v) for k, vs in req.query.items() if k not in ("cursor", "id_before", "page") for v in vs]
            query.append(("cursor", token))
            url = f"{self.base()}{req.path}?{urlencode(sorted(query))}"
            headers["Link"] = f'<{url}>; rel="next"'
        return Response(200, _dumps([self.job_json(project, j, now) for j in chunk]), headers)

    def job(self, req: Request) -> Json:
        project = self.project_of(req)
        return self.job_json(project, self._job(req, project), self.now)

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

"""The writes: create a pipeline, retry, play and cancel a job (Maintainer only, 403 otherwise)."""

from __future__ import annotations

from cidash.sim.api.base import (
    ApiBase,
    ApiError,
    Json,
    Request,
    Response,
    _dumps,
    _message,
)


class MutationsApi(ApiBase):
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

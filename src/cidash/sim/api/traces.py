"""Job logs: ``GET /projects/:id/jobs/:job_id/trace`` (rendered from the job's plan by :mod:`cidash.sim.tracegen`)."""

from __future__ import annotations

from cidash.sim import hostile_strings
from cidash.sim.api.base import (
    ApiBase,
    Json,
    Request,
    Response,
)
from cidash.sim.tracegen import TraceStore


class TracesApi(ApiBase):
    _traces: TraceStore | None = None

    def trace(self, req: Request) -> Json:
        project = self.project_of(req)
        job = self._job(req, project)
        if self._traces is None:
            self._traces = TraceStore()
        body = self._traces.trace(job, project.path, project.id, self.now)
        if self.world.scenario.hostile_strings:
            body = hostile_strings.hostile_trace(body)
        return Response(200, body, {}, content_type="text/plain; charset=utf-8")

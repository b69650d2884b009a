"""Jobs over the sync's HTTP client: the project-wide listing newest first, one job, and a job's log."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cidash.errors import PaginationError
from cidash.models import Job
from cidash.remote.http import HttpClient
from cidash.remote.readahead import read_ahead
from cidash.remote.wire import RejectedRecord, WireLog, job_from_json

PER_PAGE = 100


def jobs_newest_first(
    http: HttpClient, project_id: int, *, log: WireLog | None = None, pages_ahead: int = 0
) -> Iterator[Job]:
    """Every job of the project, newest (highest id) first, 100 per request; stop iterating when done.

    ``/projects/:id/jobs`` lists the jobs of *all* pipelines in one paginated stream (a refresh that gained 40
    jobs in 5 pipelines costs 1 request, not 5; retried jobs are included). Keyset pagination
    (``pagination=keyset&order_by=id&sort=desc``) stays cheap however deep it goes, and the newest-first order
    lets the caller stop at the first page it already knows. A page that does not go below the previous page's
    oldest id (a cursor that does not advance) ends it with :class:`PaginationError`. ``log``: as for
    :func:`cidash.remote.pipelines.pipeline_pages`. ``pages_ahead`` > 0: the pages are requested on a helper thread
    up to that many ahead of the caller, so that turning a page into jobs does not hold up the next page's request
    (only for a caller that reads the listing to its end: a page read ahead is a request made).
    """
    path = f"/projects/{project_id}/jobs"
    params = {"pagination": "keyset", "order_by": "id", "sort": "desc", "per_page": PER_PAGE}
    floor: int | None = None
    pages = http.get_link_pages(path, params, missing="project")
    for page in read_ahead(pages, pages_ahead, "cidash-sync-job-pages") if pages_ahead > 0 else pages:
        jobs: list[Job] = []
        for item in page:
            try:
                jobs.append(job_from_json(project_id, item, log))
            except RejectedRecord as exc:
                if log is None:
                    raise
                log.reject(exc)
        if jobs and floor is not None and max(j.id for j in jobs) >= floor:
            raise PaginationError(f"GET {path}: the keyset cursor does not advance; listing stopped")
        if jobs:
            floor = min(j.id for j in jobs)
        yield from jobs


def job(http: HttpClient, project_id: int, job_id: int, log: WireLog | None = None) -> Job:
    """One job by id. Raises :class:`~cidash.errors.NotFound` when GitLab no longer has it."""
    return job_from_json(project_id, http.get_json(f"/projects/{project_id}/jobs/{job_id}", missing="resource"), log)


def stream_log(
    http: HttpClient, project_id: int, job_id: int, sink_factory: Callable[[], Callable[[bytes], None]]
) -> bool:
    """A job's log streamed into ``sink_factory()``'s sink (see :meth:`HttpClient.stream_trace`); False: no log."""
    return http.stream_trace(project_id, job_id, sink_factory)

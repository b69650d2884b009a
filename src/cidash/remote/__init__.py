"""Talking to GitLab: :class:`GitLabClient` bundles the HTTP client every request goes through (:mod:`.http`:
keep-alive connections of its own, httpx for proxies and other origins), and the rate limiter and counters it
shares (:mod:`.policy`); the REST paths and their decoding live in one module per resource family
(:mod:`.projects`, :mod:`.pipelines`, :mod:`.jobs`, :mod:`.mutations`).

Domain code gets :mod:`cidash.models` dataclasses back, never raw JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cidash.connection import Connection
from cidash.remote.policy import RateLimiter, RequestStats, RetryPolicy, unadvertised_window

if TYPE_CHECKING:
    from cidash.remote.http import HttpClient

__all__ = ["GitLabClient", "RateLimiter", "RequestStats", "RetryPolicy"]


class GraphQLState:
    """``refused``: why GitLab refused the sync's GraphQL query for a reason every project meets (an endpoint it
    lacks, a field an older GitLab does not have, a redirect); set once, by the first project's sync to meet it: the
    others ask for their pipelines' details over REST at once, without a warning each
    (:func:`cidash.sync.pipelines._graphql_details`)."""

    def __init__(self) -> None:
        self.refused: str | None = None


class GitLabClient:
    """One GitLab instance: ``.http`` (created on first use), shared ``.limiter`` and ``.stats``.

    Thread-safe; close it (or use ``with``) when done.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        limiter: RateLimiter | None = None,
        stats: RequestStats | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.connection = connection
        # Keep as many requests in reserve as can be in flight, so a burst never runs past GitLab's limit. A
        # concurrency the user chose holds for a server that publishes no limit too (else it starts lower).
        self.limiter = limiter or RateLimiter(
            connection.max_rps,
            reserve=connection.concurrency + 2,
            max_concurrency=connection.concurrency,
            unadvertised_concurrency=unadvertised_window(connection.concurrency, chosen=connection.concurrency_chosen),
        )
        self.stats = stats or RequestStats()
        self.retry = retry or RetryPolicy()
        self._http: HttpClient | None = None
        #: What GitLab's GraphQL API said to the syncs on this client (and its per-project views, which share it).
        self.graphql = GraphQLState()

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            from cidash.remote.http import HttpClient

            self._http = HttpClient(self.connection, limiter=self.limiter, stats=self.stats, retry=self.retry)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> GitLabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

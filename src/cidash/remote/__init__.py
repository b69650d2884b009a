"""Talking to GitLab: :class:`GitLabClient` bundles the python-gitlab REST client (:mod:`.rest`), the httpx
client for logs, files and registry (:mod:`.http`), and the rate limiter and counters they share (:mod:`.policy`).

Domain code gets :mod:`cidash.models` dataclasses back, never python-gitlab objects or raw JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cidash.connection import Connection
from cidash.remote.policy import RateLimiter, RequestStats, RetryPolicy

if TYPE_CHECKING:
    from cidash.remote.http import HttpClient
    from cidash.remote.rest import RestClient

__all__ = ["GitLabClient", "RateLimiter", "RequestStats", "RetryPolicy"]


class GitLabClient:
    """One GitLab instance: ``.rest`` (python-gitlab), ``.http`` (httpx), shared ``.limiter`` and ``.stats``.

    Both sub-clients are created on first use. Thread-safe; close it (or use ``with``) when done.
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
        # Keep as many requests in reserve as can be in flight, so a burst never runs past GitLab's limit.
        self.limiter = limiter or RateLimiter(
            connection.max_rps, reserve=connection.concurrency + 2, max_concurrency=connection.concurrency
        )
        self.stats = stats or RequestStats()
        self.retry = retry or RetryPolicy()
        self._rest: RestClient | None = None
        self._http: HttpClient | None = None

    @property
    def rest(self) -> RestClient:
        if self._rest is None:
            from cidash.remote.rest import RestClient

            self._rest = RestClient(self.connection, limiter=self.limiter, stats=self.stats, retry=self.retry)
        return self._rest

    @property
    def http(self) -> HttpClient:
        if self._http is None:
            from cidash.remote.http import HttpClient

            self._http = HttpClient(self.connection, limiter=self.limiter, stats=self.stats, retry=self.retry)
        return self._http

    def close(self) -> None:
        if self._rest is not None:
            self._rest.close()
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> GitLabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

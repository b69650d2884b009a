"""The simulated GitLab's old single module, kept so ``cidash.sim.server.X`` imports keep working.

The code lives in :mod:`cidash.sim.http` (the server, :class:`SimulatedGitLab`, :class:`Stats`) and
:mod:`cidash.sim.api` (the HTTP-free REST API, one module per resource family).
"""

from __future__ import annotations

from cidash.sim.api import Api
from cidash.sim.api.base import (
    COUNT_LIMIT,
    GITLAB_REVISION,
    GITLAB_VERSION,
    MAX_PER_PAGE,
    ApiError,
    Json,
    Request,
    Response,
    iso,
    parse_time,
)
from cidash.sim.api.repository import COMPARE_MAX_FILES
from cidash.sim.http import MUTATING, RateLimiter, SimulatedGitLab, Stats

__all__ = [
    "COMPARE_MAX_FILES",
    "COUNT_LIMIT",
    "GITLAB_REVISION",
    "GITLAB_VERSION",
    "MAX_PER_PAGE",
    "MUTATING",
    "Api",
    "ApiError",
    "Json",
    "RateLimiter",
    "Request",
    "Response",
    "SimulatedGitLab",
    "Stats",
    "iso",
    "parse_time",
]

"""The simulated GitLab's REST API v4, HTTP-free: :class:`Api` routes a :class:`Request` to a handler.

One module per resource family; :class:`Api` combines them and holds the route table (GitLab's paths).
"""

from __future__ import annotations

from cidash.sim.api.base import ApiBase, ApiError, Host, Json, Request, Response, iso, parse_time
from cidash.sim.api.graphql import GraphQLApi
from cidash.sim.api.instance import InstanceApi
from cidash.sim.api.mutations import MutationsApi
from cidash.sim.api.pipelines import PipelinesApi
from cidash.sim.api.registry import RegistryApi
from cidash.sim.api.repository import RepositoryApi
from cidash.sim.api.traces import TracesApi

__all__ = ["Api", "ApiBase", "ApiError", "Json", "Request", "Response", "iso", "parse_time"]


class Api(InstanceApi, PipelinesApi, TracesApi, RepositoryApi, RegistryApi, MutationsApi, GraphQLApi):
    """Every route GitLab's REST API v4 has in the simulator, and the part of its GraphQL API cidash reads (see
    ``src/cidash/sim/README.md``)."""

    def __init__(self, sim: Host) -> None:
        super().__init__(sim)
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
        r("POST", "/api/graphql", Api.graphql)
        r("GET", "/jwt/auth", Api.jwt_auth)
        r("GET", "/v2/:name+/manifests/:reference", Api.manifest)

"""The container registry: repositories, tags with sizes, and the registry's own ``/v2`` manifest HEAD."""

from __future__ import annotations

from typing import Any

from cidash.sim.api.base import (
    ApiBase,
    ApiError,
    Json,
    Request,
    Response,
    _dumps,
    _message,
    iso,
)
from cidash.sim.world import SimProject


class RegistryApi(ApiBase):
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
                return self._repo_json(self.world.ensure(project), tags, count)
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

    def manifest(self, req: Request) -> Json:
        name, reference = req.params["name"], req.params["reference"]
        for project in self.world.projects.values():
            if f"{project.path}/ci" != name:
                continue
            project = self.world.ensure(project)
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

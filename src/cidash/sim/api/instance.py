"""The instance, its users and tokens, projects and groups: ``/version``, ``/user``, ``/personal_access_tokens/self``,
``/projects``, ``/groups/:id(/projects)`` and the registry's ``/jwt/auth``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cidash.sim.api.base import (
    GITLAB_REVISION,
    ApiBase,
    ApiError,
    Json,
    Request,
    _message,
    iso,
)
from cidash.sim.world import SimProject


class InstanceApi(ApiBase):
    # -- handlers: instance -------------------------------------------------------------------------------------
    def version(self, req: Request) -> Json:
        # The scenario's GitLab version: its cache keys follow that version's rules (sim/gitlab_keys.py).
        version = f"{self.world.scenario.gitlab_version}-ee"
        return {"version": version, "revision": GITLAB_REVISION, "kas": {"enabled": False}, "enterprise": True}

    def user(self, req: Request) -> Json:
        out = self.user_json(req.user)
        out.update({"created_at": iso(self.world.scenario.start.timestamp() - 500 * 86400), "bot": False})
        return out

    def token_self(self, req: Request) -> Json:
        """``GET /personal_access_tokens/self`` (GitLab >= 15.5): the calling personal access token, never its value.

        Job and OAuth tokens are not personal access tokens: GitLab answers 401 for them. Scopes and expiry come
        from ``sim.personal_tokens`` (tests change them to see ``cidash doctor`` react)."""
        token = req.headers.get("private-token") or req.arg("private_token") or ""
        info = self.sim.personal_tokens.get(token)
        if info is None:
            raise ApiError(401, {"message": "401 Unauthorized"})
        created = self.world.scenario.start.timestamp() - 200 * 86400
        return {
            "id": info.get("id", 1),
            "name": info.get("name", "cidash"),
            "revoked": bool(info.get("revoked", False)),
            "created_at": iso(created),
            "description": "",
            "scopes": list(info.get("scopes", ["api"])),
            "user_id": 1,
            "last_used_at": iso(self.now),
            "active": bool(info.get("active", True)),
            "expires_at": info.get("expires_at"),
        }

    def projects(self, req: Request) -> Json:
        items = [self.project_json(p, req.role) for p in sorted(self.world.projects.values(), key=lambda p: -p.id)]
        return self._paged(req, items)

    def project(self, req: Request) -> Json:
        return self.project_json(self.project_of(req), req.role)

    def _group_path(self, req: Request) -> str:
        """The full path of the group ``:gid`` names (id or URL-encoded full path); 404 for any other."""
        gid = req.params["gid"]
        if gid in (str(self.world.group_id), self.world.group_path):
            return self.world.group_path
        for path, sub_id in self.world.subgroups.items():
            if gid in (str(sub_id), path):
                return path
        raise _message(404, "404 Group Not Found")

    def group(self, req: Request) -> Json:
        ns = self.namespace_json(self._group_path(req))
        full_name = " / ".join(part.capitalize() for part in ns["full_path"].split("/"))
        return {
            "id": ns["id"],
            "name": ns["name"],
            "path": ns["path"],
            "full_path": ns["full_path"],
            "full_name": full_name,
            "parent_id": ns["parent_id"],
            "visibility": "private",
            "web_url": ns["web_url"],
        }

    def group_projects(self, req: Request) -> Json:
        """``GET /groups/:id/projects``: the group's own projects, with ``include_subgroups=true`` also its
        subgroups'; ``order_by`` (default ``created_at``) and ``sort`` (default ``desc``) as GitLab's API doc says
        (docs.gitlab.com/api/groups, "List projects"). The simulator has no archived project."""
        group = self._group_path(req)
        subgroups = (req.arg("include_subgroups") or "").lower() in ("true", "1")
        order_by = req.arg("order_by") or "created_at"
        sort = req.arg("sort") or "desc"
        keys: dict[str, Callable[[SimProject], Any]] = {
            "id": lambda p: p.id,
            "name": lambda p: p.name,
            "path": lambda p: p.path.rsplit("/", 1)[-1],
            "created_at": lambda p: p.created_at,
            "updated_at": lambda p: p.last_activity_at or p.created_at,
            "last_activity_at": lambda p: p.last_activity_at or p.created_at,
        }
        if order_by not in keys:
            raise ApiError(400, {"error": "order_by does not have a valid value"})
        if sort not in ("asc", "desc"):
            raise ApiError(400, {"error": "sort does not have a valid value"})
        if (req.arg("archived") or "").lower() in ("true", "1"):
            return self._paged(req, [])
        key = keys[order_by]
        chosen = [
            p
            for p in self.world.projects.values()
            if (ns := p.namespace or self.world.group_path) == group or (subgroups and ns.startswith(group + "/"))
        ]
        chosen.sort(key=lambda p: (key(p), p.id), reverse=sort == "desc")
        return self._paged(req, [self.project_json(p, req.role) for p in chosen])

    def jwt_auth(self, req: Request) -> Json:
        return {"token": "sim-registry-token", "expires_in": 900}

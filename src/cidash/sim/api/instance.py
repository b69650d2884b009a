"""The instance, its users and tokens, projects and groups: ``/version``, ``/user``, ``/personal_access_tokens/self``,
``/projects``, ``/groups/:id(/projects)`` and the registry's ``/jwt/auth``."""

from __future__ import annotations

from cidash.sim.api.base import (
    GITLAB_REVISION,
    ApiBase,
    ApiError,
    Json,
    Request,
    _message,
    iso,
)


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

    def group(self, req: Request) -> Json:
        gid = req.params["gid"]
        if gid not in (str(self.world.group_id), self.world.group_path):
            raise _message(404, "404 Group Not Found")
        return {
            "id": self.world.group_id,
            "name": "Platform",
            "path": self.world.group_path,
            "full_path": self.world.group_path,
            "full_name": "Platform",
            "parent_id": None,
            "visibility": "private",
            "web_url": f"{self.base()}/groups/{self.world.group_path}",
        }

    def group_projects(self, req: Request) -> Json:
        self.group(req)
        items = [self.project_json(p, req.role) for p in sorted(self.world.projects.values(), key=lambda p: p.id)]
        return self._paged(req, items)

    def jwt_auth(self, req: Request) -> Json:
        return {"token": "sim-registry-token", "expires_in": 900}

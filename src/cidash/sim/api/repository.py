"""Repository files (JSON and raw, HEAD for the blob id), commits, compare and branches."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from cidash.sim.api.base import (
    ApiBase,
    ApiError,
    Json,
    Request,
    Response,
    _dumps,
    _message,
    parse_time,
)
from cidash.sim.world import SimCommit, SimProject

#: Changed files a compare lists before it sets ``compare_timeout`` (GitLab cuts big diffs the same way).
COMPARE_MAX_FILES = 1000


class RepositoryApi(ApiBase):
    # -- repository -----------------------------------------------------------------------------------------------
    def _commit_for(self, req: Request, project: SimProject, *, required: bool = True) -> SimCommit:
        ref = req.arg("ref")
        if not ref:
            if required:
                raise ApiError(400, {"error": "ref is missing, ref is empty"})
            ref = project.default_branch
        commit = self.world.resolve_ref(project, ref)
        if commit is None:
            raise _message(404, "404 Commit Not Found")
        return commit

    def _file(self, req: Request, *, required: bool) -> tuple[SimProject, SimCommit, str, bytes, dict[str, str]]:
        project = self.project_of(req)
        commit = self._commit_for(req, project, required=required)
        path = req.params["file_path"]
        data = commit.files.get(path)
        if data is None:
            raise _message(404, "404 File Not Found")
        blob_id, sha256 = self.world.blob(data)
        headers = {
            "X-Gitlab-Blob-Id": blob_id,
            "X-Gitlab-Commit-Id": commit.sha,
            "X-Gitlab-Content-Sha256": sha256,
            "X-Gitlab-Encoding": "base64",
            "X-Gitlab-Execute-Filemode": "false",
            "X-Gitlab-File-Name": path.rsplit("/", 1)[-1],
            "X-Gitlab-File-Path": path,
            "X-Gitlab-Last-Commit-Id": commit.last_change.get(path, commit.sha),
            "X-Gitlab-Ref": req.arg("ref") or project.default_branch,
            "X-Gitlab-Size": str(len(data)),
        }
        return project, commit, path, data, headers

    def file(self, req: Request) -> Json:
        _, commit, path, data, headers = self._file(req, required=True)
        body = {
            "file_name": headers["X-Gitlab-File-Name"],
            "file_path": path,
            "size": len(data),
            "encoding": "base64",
            "content_sha256": headers["X-Gitlab-Content-Sha256"],
            "ref": headers["X-Gitlab-Ref"],
            "blob_id": headers["X-Gitlab-Blob-Id"],
            "commit_id": commit.sha,
            "last_commit_id": headers["X-Gitlab-Last-Commit-Id"],
            "execute_filemode": False,
            "content": base64.b64encode(data).decode(),
        }
        return Response(200, _dumps(body), headers)

    def file_raw(self, req: Request) -> Json:
        _, _, _, data, headers = self._file(req, required=False)
        return Response(200, data, headers, content_type="text/plain; charset=utf-8")

    def commits(self, req: Request) -> Json:
        project = self.project_of(req)
        ref = req.arg("ref_name") or project.default_branch
        if (req.arg("all") or "").lower() == "true":
            commits = sorted(project.commits.values(), key=lambda c: (-c.at, c.sha))
        else:
            start = self.world.resolve_ref(project, ref)
            if start is None:
                raise _message(404, "404 Commit Not Found")
            path = req.arg("path")
            # by path: only the commits that changed it (an index, not a walk of the whole history)
            commits = list(self.world.changes_of(project, start, path)) if path else self.world.history(project, ref)
        since, until, path = req.arg("since"), req.arg("until"), req.arg("path")
        try:
            since_t = parse_time(since) if since else None
            until_t = parse_time(until) if until else None
        except ValueError as exc:
            raise ApiError(400, {"error": "since is invalid"}) from exc
        selected = []
        now = self.now
        for c in commits:
            if c.at > now:
                continue
            if since_t is not None and c.at < since_t:
                continue
            if until_t is not None and c.at > until_t:
                continue
            if path and path not in c.changed:
                continue
            selected.append(c)
        chunk, headers = self.paginate(req, selected)  # only the page's commits are rendered
        return Response(200, _dumps([self.commit_json(project, c) for c in chunk]), headers)

    def commit(self, req: Request) -> Json:
        project = self.project_of(req)
        commit = self.world.resolve_ref(project, req.params["sha"])
        if commit is None:
            raise _message(404, "404 Commit Not Found")
        out = self.commit_json(project, commit)
        out["stats"] = {
            "additions": 3 * len(commit.changed),
            "deletions": len(commit.changed),
            "total": 4 * len(commit.changed),
        }
        out["status"] = None
        out["project_id"] = project.id
        return out

    def _ancestors(self, project: SimProject, commit: SimCommit | None) -> list[SimCommit]:
        out: list[SimCommit] = []
        while commit is not None:
            out.append(commit)
            commit = project.commits.get(commit.parent) if commit.parent else None
        return out

    def compare(self, req: Request) -> Json:
        """``GET /projects/:id/repository/compare?from=A&to=B[&straight=true]`` as GitLab answers it: ``commit``
        (the newest of the range), ``commits`` (reachable from ``to`` and not from ``from``, oldest first),
        ``diffs`` (one per changed path: ``old_path``, ``new_path``, ``new_file``, ``renamed_file``,
        ``deleted_file``, modes, ``diff``), ``compare_timeout``, ``compare_same_ref``, ``web_url``; past
        :data:`COMPARE_MAX_FILES` changed files the list is cut and ``compare_timeout`` is true (GitLab sets it
        from the diff collection's ``overflow?``). ``straight=false`` (the
        default) diffs the merge base against ``to`` (``from...to``); ``true`` diffs ``from`` against ``to``."""
        project = self.project_of(req)
        from_ref, to_ref = req.arg("from"), req.arg("to")
        if not from_ref or not to_ref:
            raise ApiError(400, {"error": "from is missing, to is missing"})
        a = self.world.resolve_ref(project, from_ref)
        b = self.world.resolve_ref(project, to_ref)
        if a is None or b is None:
            raise _message(404, "404 Ref Not Found")
        straight = (req.arg("straight") or "").lower() == "true"
        a_line = self._ancestors(project, a)
        a_shas = {c.sha for c in a_line}
        commits = [c for c in self._ancestors(project, b) if c.sha not in a_shas]
        base: SimCommit | None = a
        if not straight:
            base = next((c for c in self._ancestors(project, b) if c.sha in a_shas), None)
        old_files = base.files if base is not None else {}
        diffs = []
        for path in sorted(set(old_files) | set(b.files)):
            before, after = old_files.get(path), b.files.get(path)
            if before == after:
                continue
            diffs.append(
                {
                    "old_path": path,
                    "new_path": path,
                    "a_mode": "0" if before is None else "100644",
                    "b_mode": "0" if after is None else "100644",
                    "new_file": before is None,
                    "renamed_file": False,
                    "deleted_file": after is None,
                    "diff": f"@@ -1 +1 @@\n-{len(before or b'')} bytes\n+{len(after or b'')} bytes\n",
                }
            )
        overflow = len(diffs) > COMPARE_MAX_FILES
        return {
            "commit": self.commit_json(project, commits[0]) if commits else None,
            "commits": [self.commit_json(project, c) for c in reversed(commits)],
            "diffs": diffs[:COMPARE_MAX_FILES],
            "compare_timeout": overflow,  # GitLab: ``compare.diffs.diffs.overflow?`` (lib/api/entities/compare.rb)
            "compare_same_ref": a.sha == b.sha,
            "web_url": self.web(project, f"/-/compare/{a.sha}...{b.sha}"),
        }

    def _branch_json(self, project: SimProject, name: str) -> dict[str, Any] | None:
        commit = self.world.resolve_ref(project, name)
        if name not in project.heads or commit is None or commit.at > self.now:
            return None
        return {
            "name": name,
            "merged": False,
            "protected": name in project.protected,
            "default": name == project.default_branch,
            "developers_can_push": False,
            "developers_can_merge": False,
            "can_push": True,
            "web_url": self.web(project, f"/-/tree/{quote(name, safe='')}"),
            "commit": self.commit_json(project, commit),
        }

    def branches(self, req: Request) -> Json:
        project = self.project_of(req)
        items = [b for name in sorted(project.heads) if (b := self._branch_json(project, name)) is not None]
        return self._paged(req, items)

    def branch(self, req: Request) -> Json:
        project = self.project_of(req)
        item = self._branch_json(project, req.params["branch"])
        if item is None:
            raise _message(404, "404 Branch Not Found")
        return item

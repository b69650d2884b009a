"""Steps 4-5 (side thread): checksums of the critical files at every pipeline SHA, and the CI file per ref."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from cidash.errors import (
    CidashError,
    NotFound,
    Unsupported,
)
from cidash.models import (
    CiConfig,
    FileChecksum,
)
from cidash.store import Store
from cidash.sync.context import (
    _Ctx,
    _item_deferred,
)
from cidash.textsafe import storable

if TYPE_CHECKING:
    from cidash.remote.http import FileHead, HttpClient


class _SharedHeads:
    """The HEADs of ``(path, commit)`` the refs' threads ask for, each asked once: refs whose histories share a
    commit (a branch and the main line it left) need the same file versions. A second asker of a version in
    flight waits for the first one's answer (or its error)."""

    def __init__(self, http: HttpClient, project_id: int) -> None:
        self._http = http
        self._project_id = project_id
        self._lock = threading.Lock()
        self._asked: dict[tuple[str, str], Future[FileHead | None]] = {}

    def get(self, path: str, commit: str) -> FileHead | None:
        with self._lock:
            answer = self._asked.get((path, commit))
            first = answer is None
            if answer is None:
                answer = self._asked[(path, commit)] = Future()
        if not first:
            return answer.result()
        try:
            head = self._http.file_head(self._project_id, path, commit)
        except BaseException as exc:
            answer.set_exception(exc)
            raise
        answer.set_result(head)
        return head


def _sync_checksums(ctx: _Ctx) -> None:
    """Checksums of the critical files at every pipeline SHA not seen yet; a SHA is stored whole or not at all.

    A HEAD per file per SHA is what it costs naively (200 pipelines x 6 files = 1,200 requests). On a linear
    history it is far cheaper to ask *where* each file changed: one history listing per ref and one
    path-filtered listing per file tell, for every pipeline SHA, the last commit that changed each file; a file
    is the same blob at every SHA that shares that commit, so one HEAD per (file, change) is enough. SHAs not in
    a ref's first-parent history, or histories with merge commits, fall back to one HEAD per file per SHA.
    """
    store, pid = ctx.store, ctx.project.id
    files = ctx.options.critical_files
    if not files:
        return
    todo = store.pipeline_shas(pid) - store.checksummed_shas(pid)
    if not todo:
        return
    ctx.emit("checksums", f"{len(todo)} commits x {len(files)} files")
    fallback: set[str] = set()
    known = store.checksummed_shas(pid)
    heads = _SharedHeads(ctx.client.http, pid)

    def one_ref(group: tuple[str, str, set[str]]) -> tuple[set[str], list[FileChecksum] | None]:
        ref, head, shas = group
        if known and len(shas) <= len(files) + 1:  # a few new SHAs: a compare each beats 1 + len(files) listings
            try:
                rows = _checksums_from_compare(ctx, ref, shas, known, files)
            except (Unsupported, NotFound):
                rows = None
            if rows is not None:
                return shas, rows
        try:
            return shas, _checksums_from_history(ctx, ref, head, shas, files, heads=heads)
        except Unsupported:
            return shas, None

    # Refs in parallel: each is a short chain of dependent listings (a round trip each), which in a row would be
    # the longest path of a first sync; their HEADs go to the shared pool.
    groups = _shas_by_ref(store, pid, todo)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(groups))), thread_name_prefix="cidash-sync-refs") as refs:
        for shas, rows in refs.map(one_ref, groups):
            if rows is None:
                fallback |= shas
            else:
                _save_whole_shas(ctx, rows, len(files))
    if fallback:
        _checksums_per_sha(ctx, sorted(fallback), files)
    ctx.emit("checksums")


def _shas_by_ref(store: Store, pid: int, todo: set[str]) -> list[tuple[str, str, set[str]]]:
    """(ref, the ref's newest pipeline SHA, the todo SHAs whose newest pipeline ran on that ref)."""
    by_ref: dict[str, set[str]] = {}
    for sha, ref in store.newest_ref_per_sha(pid, todo).items():
        by_ref.setdefault(ref, set()).add(sha)
    head = store.latest_sha_per_ref(pid)
    return [(ref, head[ref], shas) for ref, shas in sorted(by_ref.items())]


def _checksums_from_history(
    ctx: _Ctx, ref: str, head: str, shas: set[str], files: tuple[str, ...], *, heads: _SharedHeads
) -> list[FileChecksum] | None:
    http, pid = ctx.client.http, ctx.project.id
    order: dict[str, int] = {}
    missing = set(shas)
    for sha, parents in http.commits(pid, head):
        if len(parents) > 1:
            return None  # a merge: path-filtered history is not a simple sequence any more
        order[sha] = len(order)
        missing.discard(sha)
        if not missing:
            break
    if missing:
        return None
    oldest = max(order[s] for s in shas)

    # For each file: the commits in the window that changed it (by position), then the first one before it.
    def changes_of(path: str) -> list[tuple[int, str]] | None:
        found: list[tuple[int, str]] = []
        for sha, parents in http.commits(pid, head, path=path):
            if len(parents) > 1:
                return None
            position = order.get(sha)
            if position is None or position > oldest:
                found.append((oldest + 1, sha))  # the version every older SHA in the window inherits
                break
            found.append((position, sha))
        return found

    # One listing per file, all at once (each is a round trip or two; the shared limiter bounds them).
    with ThreadPoolExecutor(max_workers=len(files), thread_name_prefix="cidash-sync-paths") as paths:
        listed = dict(zip(files, paths.map(changes_of, files), strict=True))
    changes: dict[str, list[tuple[int, str]]] = {}
    for path, found_or_none in listed.items():
        if found_or_none is None:
            return None
        changes[path] = found_or_none
    # The last change at or before each SHA (positions grow towards the past).
    wanted: dict[tuple[str, str], list[str]] = {}
    rows: list[FileChecksum] = []
    for sha in shas:
        for path in files:
            last = next((c for pos, c in changes[path] if pos >= order[sha]), None)
            if last is None:  # never changed in this history: the file never existed
                rows.append(FileChecksum(pid, sha, path, None, None, None))
            else:
                wanted.setdefault((path, last), []).append(sha)

    def head_at(item: tuple[str, str]) -> tuple[tuple[str, str], FileHead | None]:
        return item, heads.get(item[0], item[1])  # (asked once for every ref that shares the version)

    for future in ctx.bounded(head_at, list(wanted)):
        try:
            (path, last), h = future.result()
        except CidashError as exc:
            _item_deferred(ctx, "a file checksum", exc)  # its SHAs stay incomplete: not saved, retried next sync
            continue
        for sha in wanted[(path, last)]:
            if h is None:
                rows.append(FileChecksum(pid, sha, path, None, None, None))
            else:
                rows.append(FileChecksum(pid, sha, path, h.blob_id, h.last_commit_id, h.content_sha256))
    return rows


def _checksums_from_compare(
    ctx: _Ctx, ref: str, shas: set[str], known: set[str], files: tuple[str, ...]
) -> list[FileChecksum] | None:
    """Checksums of a few new SHAs of ``ref`` from the one before each: ``GET .../repository/compare`` (one request)
    names the paths that changed, and only changed critical files need a HEAD; the others are the previous SHA's
    rows. Exact when the step is one commit whose only parent is the previous SHA (that commit did not touch an
    unchanged path, so its blob and last commit carry over); any other step (several commits, a merge, a force
    push) or a compare GitLab cut short (``compare_timeout``/``overflow``) costs a HEAD per file for that SHA.
    None: no earlier checksummed SHA on the ref to start from (the history approach then)."""
    store, http, pid = ctx.store, ctx.client.http, ctx.project.id
    sequence: list[str] = []
    for p in store.pipelines(pid, ref=ref):
        if not sequence or sequence[-1] != p.sha:
            sequence.append(p.sha)
    first = min((sequence.index(s) for s in shas if s in sequence), default=None)
    if first is None:
        return None
    prev = next((s for s in reversed(sequence[:first]) if s in known), None)
    if prev is None:
        return None
    previous = {r.path: r for r in store.file_checksums(pid, sha=prev)}
    out: list[FileChecksum] = []
    done: set[str] = set()
    for sha in sequence[first:]:
        if sha not in shas or sha in done:
            continue
        done.add(sha)
        comparison = http.compare(pid, prev, sha)
        one_step = comparison.complete and comparison.commits == ((sha, (prev,)),)
        look = [f for f in files if not one_step or f in comparison.paths or f not in previous]
        rows = [dataclasses.replace(previous[f], sha=sha) for f in files if f not in look]
        for path in look:
            try:
                h = http.file_head(pid, path, sha)
            except CidashError as exc:
                _item_deferred(ctx, "a file checksum", exc)  # this SHA stays incomplete: retried next sync
                return out or None
            rows.append(
                FileChecksum(pid, sha, path, None, None, None)
                if h is None
                else FileChecksum(pid, sha, path, h.blob_id, h.last_commit_id, h.content_sha256)
            )
        out.extend(rows)
        previous = {r.path: r for r in rows}
        prev = sha
    return out if done == shas else None


def _save_whole_shas(ctx: _Ctx, rows: list[FileChecksum], nfiles: int) -> None:
    by_sha: dict[str, list[FileChecksum]] = {}
    for row in rows:
        by_sha.setdefault(row.sha, []).append(row)
    complete = [r for sha_rows in by_sha.values() if len(sha_rows) == nfiles for r in sha_rows]
    with ctx.store.transaction():
        ctx.store.save_file_checksums(complete)
    ctx.checksums += len(complete)


def _checksums_per_sha(ctx: _Ctx, shas: list[str], files: tuple[str, ...]) -> None:
    pid = ctx.project.id
    per_sha: dict[str, list[FileChecksum]] = {sha: [] for sha in shas}
    work = [(sha, path) for sha in shas for path in files]

    def head(item: tuple[str, str]) -> FileChecksum:
        sha, path = item
        h = ctx.client.http.file_head(pid, path, sha)
        if h is None:
            return FileChecksum(pid, sha, path, None, None, None)
        return FileChecksum(pid, sha, path, h.blob_id, h.last_commit_id, h.content_sha256)

    for future in ctx.bounded(head, work):
        try:
            checksum = future.result()
        except CidashError as exc:
            _item_deferred(ctx, "a file checksum", exc)  # that SHA stays incomplete: not saved, retried next sync
            continue
        rows = per_sha[checksum.sha]
        rows.append(checksum)
        if len(rows) == len(files):  # a SHA is stored whole or not at all
            ctx.store.save_file_checksums(rows)
            ctx.checksums += len(rows)


def _sync_ci_configs(ctx: _Ctx) -> None:
    store, pid, path = ctx.store, ctx.project.id, ctx.options.ci_file
    todo = [
        (ref, sha)
        for ref, sha in sorted(store.latest_sha_per_ref(pid).items())
        if not store.has_ci_config(pid, sha, path)
    ]
    if not todo:
        return
    ctx.emit("ci_config")

    def fetch(item: tuple[str, str]) -> CiConfig:
        ref, sha = item
        raw = ctx.client.http.file_raw(pid, path, sha)
        return CiConfig(pid, sha, path, ref, None if raw is None else storable(raw.decode("utf-8", errors="replace")))

    for future in ctx.bounded(fetch, todo):
        try:
            config = future.result()
        except CidashError as exc:
            _item_deferred(ctx, f"the CI file {path}", exc)
            continue
        store.save_ci_config(config, fetched_at=ctx.now)
        ctx.ci_configs += 1

"""Recomputing cache keys: locally (the committed ``.cache-key``) and remotely (a ref's head on GitLab).

- :func:`plan_key_recompute_local` shows what ``cidash key --write`` would write, per file, with a unified diff
  and the exact ``git add``/``git commit`` the user may run (cidash never commits); :func:`write_key` writes it
  (atomically, audited, refused in read-only mode, refused if the files changed since the plan).
- :func:`remote_key_status` computes, from the repository-files ``HEAD`` headers of a ref's head, the combined
  checksum of the critical files and GitLab's own ``cache:key:files`` key, and compares them with the committed
  ``.cache-key`` and with the restore key seen in the latest parsed logs on that ref (from the store).
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from cidash.actions.base import ActionRemote, AuditSink, _audit, read_only_refusal, refuse
from cidash.cachekey import (
    FileChange,
    GitLabKey,
    GitLabVersion,
    MappingProvider,
    SeenKeyMatch,
    check_file,
    checksum_lines,
    format_line,
    gitlab_key,
    is_pattern,
    match_seen_key,
    possible_suffixes,
    runner_rewrite_note,
    write_atomic,
)
from cidash.config import Config
from cidash.errors import ActionRefused, InputError
from cidash.formatting import fmt_list
from cidash.models import CiConfig, FileChecksum, Job, Project, StoredCacheEvent

if TYPE_CHECKING:
    from cidash.ciconfig import CacheSpec, CiJob
    from cidash.ciconfig import CiConfig as CiFile

# ---------------------------------------------------------------------------------------------------------------
# GitLab's key for each cache:key:files entry at a revision of the local checkout
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitLabKeys:
    """The key GitLab computes for each ``cache:key:files`` entry (entries shared by several jobs once, with
    their jobs), from the CI file ``display`` as committed at ``sha`` (``rev`` as given)."""

    display: str
    rev: str
    sha: str
    ci: CiFile
    results: tuple[tuple[CacheSpec, tuple[CiJob, ...], GitLabKey], ...]


def gitlab_keys_at(
    start: Path | None,
    default_ci_file: str,
    *,
    rev: str = "HEAD",
    ci_file: Path | None = None,
    version: GitLabVersion | None = None,
) -> GitLabKeys:
    """What ``cidash key --gitlab`` prints, for the checkout containing ``start`` (the current directory when
    None). Without ``ci_file`` the CI file ``default_ci_file`` is read as committed at ``rev`` (what GitLab reads
    when it creates the pipeline), from the working tree only when it is not committed; ``ci_file`` reads that
    file from the working tree. Raises GitError (not a checkout, unknown REV) or InputError (bad YAML)."""
    from cidash.ciconfig import load_ci, load_ci_text
    from cidash.gitrepo import GitRepo, find_root

    repo = GitRepo(find_root(ci_file.parent if ci_file else start))
    provider = repo.provider(rev)
    display = str(ci_file) if ci_file else default_ci_file
    committed = None if ci_file else repo.read_file(provider.sha, default_ci_file)
    if committed is not None:
        ci = load_ci_text(committed, display, repo_root=repo.root)
    else:
        ci = load_ci(ci_file if ci_file else repo.root / default_ci_file, repo_root=repo.root, name=display)
    groups: dict[tuple[object, ...], tuple[CacheSpec, list[CiJob]]] = {}
    for job, cache in ci.cache_entries():
        if cache.key_files:
            groups.setdefault((*cache.identity(), cache.path, cache.line), (cache, []))[1].append(job)
    results = tuple(
        (
            cache,
            tuple(jobs),
            gitlab_key(
                cache.key_files,
                provider,
                prefix=cache.prefix,
                index=cache.index,
                files_commits=cache.files_commits,
                rev=provider.sha,
                version=version,
            ),
        )
        for cache, jobs in groups.values()
    )
    return GitLabKeys(display, rev, provider.sha, ci, results)


# ---------------------------------------------------------------------------------------------------------------
# Local
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPlan:
    """What recomputing the committed checksum file would change. ``up_to_date``: nothing to write."""

    root: Path
    target: Path
    relpath: str
    files: tuple[str, ...]
    exists: bool
    up_to_date: bool
    current: str | None
    content: str
    changed: tuple[FileChange, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    git_commands: tuple[str, ...]

    def diff(self) -> str:
        """Unified diff of the checksum file, now -> after the write."""
        old = (self.current or "").splitlines(keepends=True)
        new = self.content.splitlines(keepends=True)
        return "".join(difflib.unified_diff(old, new, f"a/{self.relpath}", f"b/{self.relpath}"))

    def lines(self) -> list[str]:
        if self.up_to_date:
            return [f"{self.relpath} is up to date ({len(self.files)} files)"]
        out = [f"{self.relpath} would change:" if self.exists else f"{self.relpath} does not exist yet: it would list"]
        for ch in self.changed:
            out.append(f"  changed  {ch.path}  {(ch.old or '')[:12]} -> {(ch.new or '')[:12]}")
        out.extend(f"  added    {p}" for p in self.added)
        out.extend(f"  removed  {p}" for p in self.removed)
        if self.exists and not (self.changed or self.added or self.removed):
            out.append("  same checksums, different order or formatting")
        out.append("then, to commit it (cidash never commits):")
        out.extend(f"  {cmd}" for cmd in self.git_commands)
        return out


def plan_key_recompute_local(root: Path, config: Config, *, files: Sequence[str] | None = None) -> KeyPlan:
    """Plan ``cidash key --write <[cache_key] file>`` in the checkout at ``root`` (reads files, writes nothing)."""
    names = tuple(files) if files is not None else tuple(config.cache_key.files)
    relpath = config.cache_key.file
    target = root / relpath
    result = check_file(target, names, root)
    current: str | None
    try:
        current = target.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise InputError(f"cannot read {target}: {exc.strerror}") from None
    what = [c.path for c in result.changed] + list(result.added) + list(result.removed)
    reason = fmt_list(what, 3)
    message = f"Recompute {relpath}" + (f" ({reason} changed)" if reason and result.exists else "")
    commands = (f"git add {shlex.quote(relpath)} && git commit -m {shlex.quote(message)}",)
    return KeyPlan(
        root=root,
        target=target,
        relpath=relpath,
        files=names,
        exists=result.exists,
        up_to_date=result.ok,
        current=current,
        content=result.expected,
        changed=result.changed,
        added=result.added if result.exists else (),
        removed=result.removed,
        git_commands=commands,
    )


@dataclass(frozen=True)
class KeyWriteResult:
    plan: KeyPlan
    written: bool
    dry_run: bool
    message: str


def write_key(
    plan: KeyPlan,
    audit: AuditSink | None,
    *,
    actor: str,
    now: datetime,
    project: str = "(local checkout)",
    dry_run: bool = False,
    read_only: bool = False,
    read_only_source: str = "--read-only",
) -> KeyWriteResult:
    """Write the planned checksum file (atomically) and audit it. Refuses if the files changed since the plan."""
    common = {
        "now": now,
        "actor": actor,
        "project": project,
        "action": "write_cache_key",
        "target": f"file {plan.relpath}",
        "request": f"write {plan.target}",
    }
    if plan.up_to_date:
        _audit(audit, **common, result="ok: already up to date", dry_run=dry_run)  # type: ignore[arg-type]
        return KeyWriteResult(plan, written=False, dry_run=dry_run, message=f"{plan.relpath} is up to date")
    if dry_run:
        _audit(audit, **common, result="dry-run: nothing written", dry_run=True)  # type: ignore[arg-type]
        return KeyWriteResult(plan, written=False, dry_run=True, message="dry run: nothing was written")
    if read_only:
        reason, hint = read_only_refusal("write the cache key", project, source=read_only_source)
        raise refuse(audit, **common, reason=reason, hint=hint)  # type: ignore[arg-type]
    now_content = checksum_lines(plan.files, plan.root)
    if now_content != plan.content:
        raise refuse(
            audit,
            **common,  # type: ignore[arg-type]
            reason=f"the critical files changed since the plan: nothing written to {plan.relpath}",
            hint="plan again",
        )
    changed = write_atomic(plan.target, plan.content)
    message = f"wrote {plan.relpath}" if changed else f"{plan.relpath} already had this content"
    _audit(audit, **common, result=f"ok: {message}")  # type: ignore[arg-type]
    return KeyWriteResult(plan, written=changed, dry_run=False, message=message)


# ---------------------------------------------------------------------------------------------------------------
# Remote
# ---------------------------------------------------------------------------------------------------------------


class KeyStore(Protocol):
    """The store reads :func:`remote_key_status` needs (:class:`cidash.store.Store` has them)."""

    def jobs(self, project_id: int | None = None, *, ref: str | None = None, limit: int | None = None) -> list[Job]: ...

    def cache_events(
        self, project_id: int | None = None, *, op: str | None = None, job_ids: Sequence[int] | None = None
    ) -> list[StoredCacheEvent]: ...

    def latest_ci_config(self, project_id: int, ref: str | None = None) -> CiConfig | None: ...

    def instance_version(self, project_id: int | None = None) -> str | None: ...


@dataclass(frozen=True)
class KeySpec:
    """One ``cache:key:files`` entry to compute (from the CI file, or the committed checksum file alone)."""

    files: tuple[str, ...]
    prefix: str | None
    index: int
    files_commits: bool = False
    source: str = "default"
    unprotect: bool = False


Verdict = Literal["ok", "stale_file", "default_key", "behind", "mismatch", "no_logs", "unknown"]


@dataclass(frozen=True)
class RemoteKeyStatus:
    """The cache key of a ref's head on GitLab, against the committed checksum file and the latest logs."""

    project: str
    ref: str
    sha: str | None
    files: tuple[FileChecksum, ...]  # the critical files at the head (HEAD headers)
    missing: tuple[str, ...]
    checksum: str | None  # the combined checksum lines (None: a critical file is missing)
    committed: str | None  # the checksum file as committed at the head (None: not committed)
    committed_ok: bool | None
    keys: tuple[GitLabKey, ...]  # GitLab's key for each cache:key:files entry at the head
    seen_key: str | None  # the main restore key in the latest parsed log on the ref
    seen_job: int | None
    seen_sha: str | None
    verdict: Verdict
    explanation: tuple[str, ...]
    version: str | None = None  # the instance's GitLab version the keys were computed for (None: unknown)
    match: SeenKeyMatch | None = None  # how the seen key relates to the computed one, when it does

    @property
    def expected_keys(self) -> tuple[str, ...]:
        """Every key GitLab may compute at the head: one per entry when the version is known, else each
        version's (see :meth:`cidash.cachekey.GitLabKey.variants`)."""
        out: list[str] = []
        for key in self.keys:
            for k in key.keys:
                if k not in out:
                    out.append(k)
        return tuple(out)


def key_matches(seen: str, expected: str) -> bool:
    """Whether a runner-printed key is ``expected`` plus suffixes GitLab may append (``-<n>``, ``-protected``,
    ``-non_protected``), or the runner's sanitised form of it."""
    return match_seen_key(seen, [expected]) is not None


def key_specs_from_ci(config: CiConfig | None, default_file: str) -> tuple[KeySpec, ...]:
    """The distinct ``cache:key:files`` entries of a stored CI file; the checksum file alone when unknown."""
    if config is not None and config.content:
        from cidash.ciconfig import load_ci_text

        try:
            ci = load_ci_text(config.content, config.path)
        except InputError:
            ci = None
        if ci is not None:
            seen: dict[tuple[object, ...], KeySpec] = {}
            for _job, cache in ci.cache_entries():
                if cache.key_files and cache.identity() not in seen:
                    seen[cache.identity()] = KeySpec(
                        files=tuple(cache.key_files),
                        prefix=cache.prefix,
                        index=cache.index,
                        files_commits=cache.files_commits,
                        source=f"{config.path} at {config.sha[:12]}",
                        unprotect=cache.unprotect,
                    )
            if seen:
                return tuple(seen.values())
    return (KeySpec(files=(default_file,), prefix=None, index=0),)


def remote_key_status(
    remote: ActionRemote,
    project: Project,
    ref: str,
    config: Config,
    store: KeyStore | None = None,
    *,
    gitlab_version: GitLabVersion | None = None,
) -> RemoteKeyStatus:
    """Compare GitLab's view of ``ref``'s head with the committed checksum file and the latest logs.

    The keys follow the rules of ``gitlab_version``, else of the version ``cidash sync`` recorded for the
    project; when neither is known every version's key is accepted (and the explanation says which gave it).
    Requests: ``GET .../repository/commits/:ref``, one ``HEAD .../repository/files/:path`` per critical file and
    key file, and ``GET .../files/<checksum file>/raw``. No mutation.
    """
    version = gitlab_version
    if version is None and store is not None:
        recorded = getattr(store, "instance_version", None)
        version = GitLabVersion.maybe(recorded(project.id)) if callable(recorded) else None
    sha = remote.ref_head(project.id, ref)
    at = sha or ref
    heads: dict[str, FileChecksum | None] = {}

    def head(path: str) -> FileChecksum | None:
        if path not in heads:
            heads[path] = remote.file_head(project.id, path, at)
        return heads[path]

    critical = tuple(config.cache_key.files)
    present = [fc for p in critical if (fc := head(p)) is not None]
    missing = tuple(p for p in critical if heads.get(p) is None)
    checksum: str | None = None
    if not missing and all(fc.content_sha256 for fc in present):
        checksum = "".join(format_line(fc.content_sha256 or "", fc.path) for fc in present)
    raw = remote.file_raw(project.id, config.cache_key.file, at)
    committed = raw.decode("utf-8", "surrogateescape") if raw is not None else None
    committed_ok = None if committed is None or checksum is None else committed == checksum

    ci_config = store.latest_ci_config(project.id, ref) if store is not None else None
    specs = key_specs_from_ci(ci_config, config.cache_key.file)
    keys: list[GitLabKey] = []
    notes: list[str] = []
    for spec in specs:
        # Only plain file paths can be asked for one by one; './x' is never found by GitLab either.
        literal = [f.lstrip("/") for f in spec.files if not is_pattern(f) and f.strip() and not f.startswith("./")]
        if any(is_pattern(f) for f in spec.files):
            notes.append(f"pattern entries in {list(spec.files)} are not expanded remotely: only plain paths count")
        blob_ids = {p: (fc.blob_id if (fc := head(p)) else None) for p in literal}
        commit_ids = {p: (fc.last_commit_id if (fc := head(p)) else None) for p in literal}
        keys.append(
            gitlab_key(
                spec.files,
                MappingProvider(blob_ids, commit_ids, files=[]),
                prefix=spec.prefix,
                index=spec.index,
                files_commits=spec.files_commits,
                rev=at,
                version=version,
            )
        )
    if version is None:
        notes.append(
            "GitLab version unknown (run 'cidash sync' to record it): every version's key is accepted: "
            + "; ".join(f"{v.key} ({v.when})" for k in keys for v in k.variants())
        )

    seen_key, seen_job, seen_sha = latest_seen_key(store, project.id, ref)
    unprotect = any(spec.unprotect for spec in specs)
    match = None
    for spec, key in zip(specs, keys, strict=True):  # each entry with its own cache:unprotect
        if seen_key and match is None:
            match = match_seen_key(seen_key, key.keys, version=version, unprotect=spec.unprotect)
    verdict, explanation = _judge(
        version=version,
        unprotect=unprotect,
        match=match,
        ref=ref,
        sha=sha,
        relpath=config.cache_key.file,
        missing=missing,
        committed=committed,
        committed_ok=committed_ok,
        keys=keys,
        seen_key=seen_key,
        seen_job=seen_job,
        seen_sha=seen_sha,
    )
    return RemoteKeyStatus(
        project=project.path,
        ref=ref,
        sha=sha,
        files=tuple(present),
        missing=missing,
        checksum=checksum,
        committed=committed,
        committed_ok=committed_ok,
        keys=tuple(keys),
        seen_key=seen_key,
        seen_job=seen_job,
        seen_sha=seen_sha,
        verdict=verdict,
        explanation=tuple(notes + explanation),
        version=str(version) if version else None,
        match=match,
    )


def latest_seen_key(store: KeyStore | None, project_id: int, ref: str) -> tuple[str | None, int | None, str | None]:
    """The cache key last restored on ``ref`` as the logs say: among the newest 200 jobs on the ref, each job's
    first restore attempt on a main key (a fallback key's attempt is not the key the job computed); the newest such
    job (by ``created_at``) wins. Returns (key, job id, the job's sha); Nones when no log shows one. The one rule
    ``cidash`` uses for "last seen key" (the remote key status and the dashboard's Caches tab)."""
    if store is None:
        return None, None, None
    jobs = store.jobs(project_id, ref=ref, limit=200)
    if not jobs:
        return None, None, None
    by_id = {j.id: j for j in jobs}
    events = store.cache_events(project_id, op="restore", job_ids=list(by_id))
    first: dict[int, StoredCacheEvent] = {}
    for ev in events:
        if ev.job_id not in first and (ev.detail or "") != "fallback":
            first[ev.job_id] = ev
    if not first:
        return None, None, None
    job_id = max(first, key=lambda i: (by_id[i].created_at, i))
    return first[job_id].key, job_id, by_id[job_id].sha


def _judge(
    *,
    ref: str,
    sha: str | None,
    relpath: str,
    missing: Sequence[str],
    committed: str | None,
    committed_ok: bool | None,
    keys: Sequence[GitLabKey],
    seen_key: str | None,
    seen_job: int | None,
    seen_sha: str | None,
    version: GitLabVersion | None = None,
    unprotect: bool = False,
    match: SeenKeyMatch | None = None,
) -> tuple[Verdict, list[str]]:
    notes: list[str] = []
    head = (sha or ref)[:12]
    if missing:
        notes.append(f"critical files missing at {head}: {', '.join(missing)}")
    expected = list(dict.fromkeys(k for key in keys for k in key.keys))
    if committed is None:
        notes.append(f"{relpath} is not committed at {head}: cache:key:files cannot see it")
    elif committed_ok is False:
        notes.append(
            f"{relpath} at {head} does not match the critical files: run 'cidash key --write {relpath}' and commit it"
        )
        return "stale_file", notes
    defaults = [v for key in keys for v in key.variants() if v.is_default]
    if defaults and (version is not None or all(v.is_default for key in keys for v in key.variants())):
        notes.append(f"GitLab's key at {head} falls back to '{defaults[0].key}': no listed file exists there")
        return "default_key", notes
    if seen_key is None:
        notes.append(f"no parsed job log on {ref} in the store with a cache restore: run 'cidash sync'")
        # A key with '/' is refused by runner 18.2.0 before any restore line: say so, it explains missing logs.
        notes.extend(n for k in expected if "/" in k and (n := runner_rewrite_note(k)))
        return "no_logs", notes
    if "-default" in seen_key or seen_key == "default" or seen_key.startswith("default-"):
        notes.append(f"job {seen_job} restored '{seen_key}': the key fell back to default (a stale cache)")
        return "default_key", notes
    if match is not None:
        gave = next((v.when for key in keys for v in key.variants() if v.key == match.base), "")
        which = f" ({gave})" if version is None and gave else ""
        notes.append(f"job {seen_job} restored '{seen_key}': GitLab's key for {head} is '{match.base}'{which}")
        notes.append(f"suffixes: {match.reason}")
        return "ok", notes
    suffixes = "; ".join(f"{s or '(none)'}: {why}" for s, why in possible_suffixes(version, unprotect=unprotect))
    rewriting = [n for k in expected if (n := runner_rewrite_note(k))]
    if sha is not None and seen_sha is not None and seen_sha != sha:
        notes.append(
            f"the latest parsed log (job {seen_job}) is from {seen_sha[:12]}, not the head {head}: "
            f"the next pipeline will use {' or '.join(expected)}"
        )
        return "behind", notes
    notes.append(
        f"job {seen_job} restored '{seen_key}', but GitLab computes {' or '.join(expected)} for {head} "
        f"(then '-<n>' after 'Clear runner caches' and one of {suffixes})"
    )
    notes.extend(rewriting)
    return "mismatch", notes


__all__ = [
    "ActionRefused",
    "GitLabKeys",
    "KeyPlan",
    "KeySpec",
    "KeyWriteResult",
    "RemoteKeyStatus",
    "gitlab_keys_at",
    "key_matches",
    "key_specs_from_ci",
    "latest_seen_key",
    "plan_key_recompute_local",
    "remote_key_status",
    "write_key",
]

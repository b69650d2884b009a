"""``cidash lint``: cache-key and image-build findings for a resolved ``.gitlab-ci.yml``.

Each finding has a stable rule id (see :data:`RULES`; the README has the same table). The central rule is
CK002: a ``cache:key:files`` entry written by a job of the pipeline (a ``> file`` redirect or ``tee`` in a
script, or an ``artifacts:paths`` entry) is never seen by GitLab, which computes the key at pipeline creation
from the committed files — the key is ``<prefix>-default`` forever.

Public API: :func:`lint(ci, *, repo_root, settings) -> list[Finding]`, :class:`Finding`, :data:`RULES`,
:func:`format_text`, :func:`to_json`, :func:`written_paths`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cidash.cachekey import (
    ERAS,
    MAX_KEY_FILES,
    RAISED_MAX_KEY_FILES,
    GitLabVersion,
    check_file,
    is_pattern,
    join_key,
    key_prefix,
    merge_era_labels,
    parse_checksum_lines,
    pathspec_path,
    pattern_matches,
    prefix_error,
    verbatim_problem,
)
from cidash.ciconfig import CacheSpec, CiConfig, CiJob
from cidash.config import DEFAULT_CRITICAL_FILES, Config
from cidash.errors import CidashError, GitError
from cidash.formatting import fmt_list

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    """One lint finding: ``path:line: RULE-ID severity message``."""

    rule_id: str
    severity: Severity
    path: str
    line: int
    message: str

    def as_text(self) -> str:
        return f"{self.path}:{self.line}: {self.rule_id} {self.severity} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "severity": self.severity,
            "path": self.path,
            "line": self.line,
            "message": self.message,
        }


#: rule id -> (severity, what it catches). Stable: scripts filter on these ids.
RULES: dict[str, tuple[Severity, str]] = {
    "CK001": ("error", "more than 2 entries in cache:key:files (rejected unless the instance raised the limit to 10)"),
    "CK002": ("error", "a cache:key:files entry is written by a job of the pipeline (the key is <prefix>-default)"),
    "CK003": ("error", "a cache:key:files entry is not committed at HEAD (the key is <prefix>-default)"),
    "CK004": ("error", "the committed combined-checksum file is stale, or a critical file is missing"),
    "CK005": ("error", "a CI/CD variable inside cache:key:files (GitLab does not expand it)"),
    "CK006": ("error", "cache:key uses both files and files_commits (GitLab rejects the pipeline)"),
    "CK007": ("info", "runtime cache key from a dotenv variable (works, not documented; verify it)"),
    "CK008": ("warning", "several jobs write the same cache key without one resource_group (last one wins)"),
    "IM001": ("warning", "a job image is not pinned (':latest' or no tag)"),
    "IM002": ("warning", "the image-build job pulls the image to test whether it exists (use a manifest HEAD)"),
    "IM003": ("warning", "the image-build job does not retry runner_system_failure/stuck_or_timeout_failure"),
    "CK009": ("error", "a cache key prefix GitLab rejects ('/', '.' or '..'), or a whitespace-only one it drops"),
    "CK010": ("error", "a cache:key:files entry GitLab never finds as written ('./path', '..', '//')"),
    "CI001": ("info", "an include, extends or !reference that cidash could not resolve"),
    "CI002": ("info", "a check was skipped (no image-build job, no git checkout)"),
}

_PROJECT_DIR_PREFIX = re.compile(r"^(?:\$CI_PROJECT_DIR|\$\{CI_PROJECT_DIR\}|\.)/+")
_REDIRECT = re.compile(r"(?<![<>=\-])(?:[0-9]|&)?>{1,2}\|?\s*(\"[^\"]+\"|'[^']+'|[^\s;&|<>()`]+)")
_TEE = re.compile(r"\btee\s+((?:-[a-zA-Z-]+\s+)*)(\"[^\"]+\"|'[^']+'|[^\s;&|<>()`]+)")
_COPY = re.compile(r"\b(?:cp|mv|install)\s+(?:-[a-zA-Z-]+\s+)*(?:[^\s;&|<>]+\s+)+([^\s;&|<>()`]+)\s*(?:$|[;&|])")
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_HEAD_TOOLS = re.compile(
    r"docker\s+manifest\s+inspect|docker\s+buildx\s+imagetools\s+inspect|\bcrane\s+(?:manifest|digest|ls|head)\b"
    r"|\bskopeo\s+inspect\b|\bregctl\s+(?:manifest|image|tag)\b|\bcurl\b.*(?:\s-I\b|--head|-X\s*HEAD)"
    r"|\bwget\b.*--spider"
)
_PULL = re.compile(r"\b(?:docker|podman|nerdctl)\s+(?:image\s+)?pull\b")
_CHECK_SHAPE = re.compile(r"^\s*(?:if|until|while)\b|&&|\|\||\$\?|;\s*then\b|^\s*!")
_INFRA_REASONS = ("runner_system_failure", "stuck_or_timeout_failure")


def _clean_path(raw: str) -> str:
    path = raw.strip().strip("\"'")
    while True:
        new = _PROJECT_DIR_PREFIX.sub("", path)
        if new == path:
            break
        path = new
    return path


def written_paths(job: CiJob) -> list[tuple[str, str, int]]:
    """Files a job creates in the project directory: ``[(path, how, line)]`` from script redirects, ``tee``,
    the destination of ``cp``/``mv``/``install``, and ``artifacts:paths`` (may be a directory or a glob)."""
    out: list[tuple[str, str, int]] = []
    for cmd in job.all_script():
        for m in _REDIRECT.finditer(cmd.text):
            target = m.group(1)
            if target.startswith("&") or target.startswith("/dev/"):
                continue
            out.append((_clean_path(target), f"'{cmd.text.strip()}' in {cmd.section}", cmd.line))
        for m in _COPY.finditer(cmd.text):
            out.append((_clean_path(m.group(1)), f"'{cmd.text.strip()}' in {cmd.section}", cmd.line))
        for m in _TEE.finditer(cmd.text):
            if not m.group(2).startswith("/dev/"):
                out.append((_clean_path(m.group(2)), f"'{cmd.text.strip()}' in {cmd.section}", cmd.line))
    for p in job.artifacts_paths:
        out.append((_clean_path(p), "artifacts:paths", job.artifacts_line or job.line))
    return out


_VERIFY = re.compile(r"\bgit\s+diff\b|\bdiff\b|\bcmp\b|sha256sum\s+(?:-c|--check)\b|cidash\s+key\s+--check\b")


def _verifies(job: CiJob, written: str) -> bool:
    """Whether the job regenerates ``written`` only to compare it with the committed copy (a verifier)."""
    return any(_VERIFY.search(c.text) and written in c.text for c in job.all_script())


def _covers(written: str, entry: str, from_artifacts: bool) -> bool:
    entry = _clean_path(entry)
    if written == entry or (is_pattern(entry) and pattern_matches(entry, written)):
        return True
    if from_artifacts:
        base = written.rstrip("/")
        if entry.startswith(base + "/") or (is_pattern(written) and pattern_matches(written, entry)):
            return True
    return False


class _Tracked:
    """Which paths exist at HEAD of the git checkout around ``repo_root`` (None when unknown)."""

    def __init__(self, repo_root: Path | None, rev: str) -> None:
        self.files: set[str] | None = None
        self.error: str | None = None
        if repo_root is None:
            return
        from cidash.gitrepo import GitRepo, find_root

        try:
            repo = GitRepo(find_root(repo_root))
            self.files = set(repo.tree_files(rev))
        except GitError as exc:
            self.error = exc.one_line()

    def exists(self, entry: str) -> bool | None:
        """Whether GitLab finds the entry at that commit: verbatim (only leading '/' stripped), patterns (with
        ``*``) expanded GitLab's way. None when the file list is unknown."""
        entry = entry.lstrip("/")
        if verbatim_problem(entry):
            return False
        if self.files is None:
            return None
        if is_pattern(entry):
            return any(pattern_matches(entry, f) for f in self.files)
        return entry in self.files


def lint(
    ci: CiConfig,
    *,
    repo_root: Path | None = None,
    settings: Config | None = None,
    rev: str = "HEAD",
    gitlab_version: GitLabVersion | None = None,
) -> list[Finding]:
    """All findings for ``ci``, sorted by path and line, without duplicates.

    ``repo_root`` (the checkout's directory) enables the checks that need git and the working tree (CK003,
    CK004); ``settings`` supplies the image-build job name and the combined-checksum file (defaults otherwise);
    ``gitlab_version`` picks the key GitLab falls back to (unknown: the current rule, older ones named too).
    """
    settings = settings or Config()
    findings: list[Finding] = []
    add = findings.append
    tracked = _Tracked(repo_root, rev)
    if tracked.error and any(c.key_files for _, c in ci.cache_entries()):
        add(Finding("CI002", "info", ci.path, 1, f"committed-file checks skipped: {tracked.error}"))

    writers: dict[str, list[tuple[CiJob, str, int, bool]]] = defaultdict(list)
    produced: list[tuple[CiJob, str, str, int, bool]] = []
    for job in ci.jobs:
        for path, how, line in written_paths(job):
            produced.append((job, path, how, line, how == "artifacts:paths"))
            writers[path].append((job, how, line, how == "artifacts:paths"))

    for job, cache in ci.cache_entries():
        findings.extend(_key_files_findings(ci, job, cache, produced, tracked, version=gitlab_version))
        findings.extend(_runtime_key_findings(ci, job, cache))
        findings.extend(_prefix_findings(ci, cache))

    findings.extend(_writer_findings(ci))
    findings.extend(_image_findings(ci))
    findings.extend(_build_job_findings(ci, settings))
    findings.extend(_combined_file_findings(repo_root, settings, tracked))
    findings.extend(_unresolved_findings(ci))

    unique: dict[tuple[str, str, int, str], Finding] = {}
    for f in findings:
        unique.setdefault((f.rule_id, f.path, f.line, f.message), f)
    return sorted(unique.values(), key=lambda f: (f.path != ci.path, f.path, f.line, f.rule_id, f.message))


def _key_files_findings(
    ci: CiConfig,
    job: CiJob,
    cache: CacheSpec,
    produced: Sequence[tuple[CiJob, str, str, int, bool]],
    tracked: _Tracked,
    *,
    version: GitLabVersion | None = None,
) -> Iterable[Finding]:
    if not cache.key_files:
        return
    path = cache.path or ci.path
    lines = cache.key_files_lines or tuple(cache.line for _ in cache.key_files)
    kind = "files_commits" if cache.files_commits else "files"
    if cache.both_files_and_commits:
        yield Finding(
            "CK006", "error", path, cache.line, "cache:key uses both 'files' and 'files_commits'; GitLab rejects it"
        )
    if len(cache.key_files) > MAX_KEY_FILES:
        raised = not cache.files_commits and len(cache.key_files) <= RAISED_MAX_KEY_FILES
        limit = (
            f"GitLab rejects it ('{kind} config has too many items (maximum is {MAX_KEY_FILES})') unless the "
            f"instance raised the limit to {RAISED_MAX_KEY_FILES} (flag increase_ci_cache_key_files_limit, off by "
            "default)"
            if raised
            else f"GitLab rejects it ('{kind} config has too many items'; at most {MAX_KEY_FILES}"
            + (
                f", {RAISED_MAX_KEY_FILES} with the instance flag increase_ci_cache_key_files_limit)"
                if not cache.files_commits
                else ")"
            )
        )
        yield Finding(
            "CK001",
            "error",
            path,
            lines[MAX_KEY_FILES],
            f"cache:key:{kind} has {len(cache.key_files)} entries; {limit}: combine them into one committed "
            f"checksum file (cidash key --write .cache-key FILES...) or use patterns",
        )
    default_key = _default_key(cache, version)
    statuses: list[tuple[str, int, str | None, bool | None]] = []
    for entry, line in zip(cache.key_files, lines, strict=False):
        writer = next(
            ((j, how, wl) for j, w, how, wl, art in produced if _covers(w, entry, art) and not _verifies(j, w)),
            None,
        )
        how_text = f"job '{writer[0].name}' writes it ({writer[1]}, line {writer[2]})" if writer else None
        # files_commits: entries go to git as pathspecs, which normalise './', '//' and '..'
        looked_up = (pathspec_path(entry.lstrip("/")) or entry) if kind == "files_commits" else entry
        statuses.append((entry, line, how_text, tracked.exists(looked_up)))
    # What GitLab will see: entries committed at HEAD (unknown = assume committed unless written by a job).
    usable = [
        e for e, _, how, exists in statuses if "$" not in e and (exists is True or (exists is None and how is None))
    ]
    for entry, line, how, exists in statuses:
        if "$" in entry:
            yield Finding(
                "CK005",
                "error",
                path,
                line,
                f"cache:key:{kind} entry {entry!r} uses a CI/CD variable; GitLab does not expand variables "
                "here, so it matches no file",
            )
            continue
        consequence = (
            f"the key will be {default_key} forever"
            if not usable
            else f"GitLab ignores it; the key only follows {', '.join(usable)}"
        )
        problem = verbatim_problem(entry.lstrip("/"))
        if problem:
            plain = pathspec_path(entry.lstrip("/"))
            write = f"; write {plain!r}" if plain and plain != entry else ""
            if kind == "files_commits":
                # GitLab hands these to git as pathspecs (LastCommitForPath): git reads them normalised
                yield Finding(
                    "CK010",
                    "warning",
                    path,
                    line,
                    f"cache:key:files_commits entry {entry!r}: git reads it as {plain!r}, so it counts, but the "
                    f"same entry under cache:key:files is never found on GitLab 18.4+{write}",
                )
                continue
            yield Finding(
                "CK010",
                "error",
                path,
                line,
                f"cache:key:{kind} entry {entry!r}: GitLab strips only leading '/'; {problem} from GitLab 18.4 on "
                f"(older versions ask git, which reads it as {plain!r}); {consequence}{write}",
            )
            continue
        if how is not None:
            if exists:
                # Committed too: the key follows the committed file; the job's copy is at best redundant.
                msg = (
                    f"{entry!r} is committed, and {how}: GitLab computes this key at pipeline creation from the "
                    "committed file, so the job's version never reaches the key; keep the committed file current "
                    "(cidash key --check) instead of regenerating it in the pipeline"
                )
                yield Finding("CK002", "warning", path, line, msg)
            else:
                msg = f"{entry!r}: {how}; GitLab computes this key at pipeline creation; {consequence}"
                yield Finding("CK002", "error", path, line, msg)
        elif exists is False:
            yield Finding(
                "CK003",
                "error",
                path,
                line,
                f"{entry!r} is not committed at HEAD; GitLab computes this key at pipeline creation; {consequence}",
            )


def _default_key(cache: CacheSpec, version: GitLabVersion | None) -> str:
    """The key GitLab falls back to, in backticks; with no version, the current rule first and the older keys
    with the versions that give them."""

    def one(v: GitLabVersion) -> str:
        used, _ = key_prefix(cache.prefix, cache.key_files, cache.index, files_commits=cache.files_commits, version=v)
        return join_key(used, "default")

    if version is not None:
        return f"`{one(version)}`"
    eras = ERAS[:1] if cache.files_commits else ERAS
    keys: dict[str, list[str]] = {}
    for era in eras:
        keys.setdefault(one(era.sample), []).append(era.label)
    if len(keys) == 1:
        return f"`{next(iter(keys))}`"
    first, *rest = keys.items()
    older = "; ".join(f"`{k}` on {merge_era_labels(labels)}" for k, labels in rest)
    return f"`{first[0]}` ({merge_era_labels(first[1])}; {older})"


def _prefix_findings(ci: CiConfig, cache: CacheSpec) -> Iterable[Finding]:
    """``prefix:`` (and a plain string ``key:``) as GitLab validates them: no '/' (also URL-escaped), not '.'
    or '..'; a whitespace-only prefix is dropped."""
    path = cache.path or ci.path
    if cache.key_files and cache.prefix is not None:
        error = prefix_error(cache.prefix)
        if error:
            yield Finding(
                "CK009",
                "error",
                path,
                cache.line,
                f"cache:key:prefix {cache.prefix!r} {error}: GitLab rejects the pipeline",
            )
        elif cache.prefix and not cache.prefix.strip():
            yield Finding(
                "CK009",
                "warning",
                path,
                cache.line,
                f"cache:key:prefix {cache.prefix!r} is only whitespace: GitLab drops it, the key is the digest alone",
            )
    elif cache.key is not None:
        error = prefix_error(cache.key)
        if error:
            yield Finding(
                "CK009", "error", path, cache.line, f"cache:key {cache.key!r} {error}: GitLab rejects the pipeline"
            )


def _runtime_key_findings(ci: CiConfig, job: CiJob, cache: CacheSpec) -> Iterable[Finding]:
    if cache.key is None or "$" not in cache.key:
        return
    defined = {k for k, _ in ci.variables} | {k for k, _ in job.variables}
    for m in _VARIABLE.finditer(cache.key):
        var = m.group(1)
        if var.startswith(("CI_", "GITLAB_")) or var in defined:
            continue
        producers = [
            p.name
            for p in ci.jobs
            if p.dotenv_reports and any(re.search(rf"\b{re.escape(var)}=", c.text) for c in p.all_script())
        ]
        if not producers:
            continue
        path = cache.path or ci.path
        msg = (
            f"cache key {cache.key!r} comes from the dotenv variable {var} (job {producers[0]!r}): the runner "
            f"expands it, but this is not documented as supported; if {var} is missing the key silently becomes "
            f"{_VARIABLE.sub('', cache.key)!r}. Verify on your instance"
        )
        if job.needs and not any(p in job.needs for p in producers):
            yield Finding(
                "CK007",
                "warning",
                path,
                cache.line,
                f"{msg}; job '{job.name}' has needs: without {producers[0]!r}, so it never receives {var}",
            )
        else:
            yield Finding("CK007", "info", path, cache.line, msg)


def _writer_findings(ci: CiConfig) -> Iterable[Finding]:
    groups: dict[tuple[Any, ...], list[tuple[CiJob, CacheSpec]]] = defaultdict(list)
    for job, cache in ci.cache_entries():
        if cache.writes:
            identity = cache.identity()
            if "CI_JOB_NAME" in repr(identity) or "CI_JOB_ID" in repr(identity):
                identity = (*identity, job.name)  # a per-job key: no other job writes it
            groups[identity].append((job, cache))
    for members in groups.values():
        jobs = {j.name for j, _ in members}
        if len(jobs) < 2:
            continue
        rgroups = {j.resource_group for j, _ in members}
        names = fmt_list(sorted(jobs), _NAMES_SHOWN)  # once per key: every writer's finding names the others
        for job, cache in members:
            key = _describe_key(cache)
            if job.resource_group is None:
                yield Finding(
                    "CK008",
                    "warning",
                    job.path or ci.path,
                    job.line,
                    f"job '{job.name}' writes cache {key} (policy {cache.policy}) without a resource_group; "
                    f"{len(jobs)} jobs write it ({names}): concurrent writers; last one wins",
                )
            elif len(rgroups) > 1:
                yield Finding(
                    "CK008",
                    "warning",
                    job.path or ci.path,
                    job.line,
                    f"job '{job.name}' writes cache {key} in resource_group '{job.resource_group}', other writers "
                    f"use other groups ({names}): concurrent writers; last one wins",
                )


#: Job names a finding lists before "and N more": a key written by thousands of jobs made each of their findings
#: list all of them (quadratic: a CI file of 60,000 such jobs took lint past 20 GB).
_NAMES_SHOWN = 10


def _describe_key(cache: CacheSpec) -> str:
    if cache.key_files:
        kind = "files_commits" if cache.files_commits else "files"
        used, _ = key_prefix(cache.prefix, cache.key_files, cache.index, files_commits=cache.files_commits)
        listed = ", ".join(cache.key_files)
        return f"'{join_key(used, f'<{kind}: {listed}>')}'"
    return repr(cache.key if cache.key is not None else "default")


def _image_findings(ci: CiConfig) -> Iterable[Finding]:
    for job in ci.jobs:
        image = job.image
        if not image or "@sha256:" in image:
            continue
        if re.fullmatch(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", image.strip()):
            continue  # entirely a variable: cannot tell
        last = image.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else None
        if tag is None or tag == "latest":
            what = "':latest'" if tag == "latest" else "no tag (= ':latest')"
            yield Finding(
                "IM001",
                "warning",
                job.path or ci.path,
                job.image_line or job.line,
                f"image {image!r} has {what}: pin a version tag or a digest so jobs run what was tested",
            )


def _build_job_findings(ci: CiConfig, settings: Config) -> Iterable[Finding]:
    name = settings.image.build_job
    job = ci.job(name)
    if job is None:
        yield Finding(
            "CI002",
            "info",
            ci.path,
            1,
            f"no job named '{name}': image-build checks skipped (set [image] build_job in the config)",
        )
        return
    path = job.path or ci.path
    script = job.all_script()
    has_head = any(_HEAD_TOOLS.search(c.text) for c in script)
    for cmd in script:
        if not _PULL.search(cmd.text):
            continue
        if _CHECK_SHAPE.search(cmd.text) or not has_head:
            yield Finding(
                "IM002",
                "warning",
                path,
                cmd.line,
                "'docker pull' used to test whether the image exists downloads every layer; ask the registry "
                "with a manifest HEAD instead (docker manifest inspect, crane digest, skopeo inspect, "
                "regctl manifest head, or curl -I)",
            )
    covered = set(job.retry_when) if job.retry_max > 0 else set()
    missing = [] if "always" in covered else [r for r in _INFRA_REASONS if r not in covered]
    if missing:
        yield Finding(
            "IM003",
            "warning",
            path,
            job.line,
            f"job '{name}' does not retry on {' / '.join(missing)}: add "
            "retry: {max: 2, when: [runner_system_failure, stuck_or_timeout_failure]}",
        )


def _combined_file_findings(repo_root: Path | None, settings: Config, tracked: _Tracked) -> Iterable[Finding]:
    if repo_root is None:
        return
    name = settings.cache_key.file
    target = repo_root / name
    if not target.is_file() or tracked.exists(name) is False:
        return  # not committed: CK003 reports it where it is used as a key
    files = list(settings.cache_key.files)
    if tuple(files) == DEFAULT_CRITICAL_FILES:
        # Not configured: check the file against the files it lists itself.
        try:
            listed = list(parse_checksum_lines(target.read_text(encoding="utf-8", errors="surrogateescape")))
        except OSError:
            listed = []
        if listed:
            files = listed
    try:
        result = check_file(target, files, repo_root)
    except CidashError as exc:
        yield Finding("CK004", "error", name, 1, f"cannot verify {name}: {exc.one_line()}")
        return
    if not result.ok:
        yield Finding(
            "CK004",
            "error",
            name,
            1,
            f"{name} is stale ({'; '.join(result.describe())}): run cidash key --write {name} and commit it",
        )


def _unresolved_findings(ci: CiConfig) -> Iterable[Finding]:
    open_includes = bool(ci.unresolved_includes)
    for u in ci.unresolved:
        if u.kind == "include":
            msg = f"include {u.what} not resolved ({u.reason}); jobs and caches it defines are not checked"
            yield Finding("CI001", "info", u.path or ci.path, u.line, msg)
        else:
            severity: Severity = "info" if open_includes else "error"
            yield Finding("CI001", severity, u.path or ci.path, u.line, f"{u.kind} {u.what}: {u.reason}")


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    counts = {"error": 0, "warning": 0, "info": 0}
    for f in findings:
        counts[f.severity] += 1
    return counts


def format_text(findings: Sequence[Finding]) -> str:
    """``path:line: RULE-ID severity message`` lines plus a one-line summary."""
    counts = summary(findings)
    lines = [f.as_text() for f in findings]
    lines.append(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info")
    return "\n".join(lines) + "\n"


def to_json(findings: Sequence[Finding], *, path: str) -> dict[str, Any]:
    """``{"path", "findings": [{rule_id, severity, path, line, message}], "summary": {...}}``."""
    counts = summary(findings)
    return {
        "path": path,
        "ok": counts["error"] == 0,
        "findings": [f.as_dict() for f in findings],
        "summary": counts,
    }

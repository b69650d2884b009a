"""`cidash key`: the combined checksum of the critical files, and the key GitLab computes for cache:key:files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cidash.cachekey import AlgorithmKey, GitLabKey
    from cidash.ciconfig import CacheSpec, CiJob

HELP = "combined checksum of the critical files (sha256sum-identical), or the key GitLab computes"
DESCRIPTION = """\
Print the combined checksum of the critical files, one line per file, byte-identical to
`sha256sum FILES...` (names with a backslash, newline or carriage return are escaped the way GNU
sha256sum does it). Commit the result as .cache-key and use it as the single cache:key:files entry:
that design works on every GitLab version.

With no FILES the configured list is used ([cache_key] files; default: go.mod go.sum .gitlab-ci.yml
Dockerfile.ci .mise/config.toml). A missing file is an error naming it, never a shorter key.

  --write F   write that content to F atomically (temp file + rename); prints whether F changed. F is a
              regular file or a new path (a device, FIFO, socket or directory is refused); - is stdout
  --check F   compare F with what would be written: exit 0 if identical, 1 otherwise with the files that
              changed since F was written. With no FILES and the built-in default list, F is checked
              against the files it lists itself.

With --gitlab, print for every cache: entry with key: files: or key: files_commits: in the CI file the
key GitLab assigns at --rev of the local git checkout, for both algorithms: content (GitLab >= 18.4,
blob ids) and commits (older GitLab and files_commits: last-commit ids). The prefix is prefix:, or the
entry's index when there is none; globs (* without a slash, ** at any depth) are expanded against the
tree at REV; when no listed file exists the key is <prefix>-default and the output says why. GitLab
then appends -<n> after "Clear runner caches" and -protected/-non_protected.

  --rev REV      commit to compute at (default HEAD)
  --ci-file F    CI file to read from the working tree (default: [cache_key] ci_file, .gitlab-ci.yml,
                 as committed at REV, or from the working tree when it is not committed)
  --json         machine-readable output

Examples:
  cidash key > .cache-key
  cidash key --write .cache-key go.mod go.sum .gitlab-ci.yml Dockerfile.ci .mise/config.toml
  cidash key --check .cache-key
  cidash key --gitlab --rev origin/main

exit codes: 0 ok; 1 --check found a difference, or --gitlab found a key that falls back to default;
2 a missing file, not a git checkout, unknown REV, bad YAML or bad usage.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILES", help="critical files (default: [cache_key] files)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="F", help="write the checksum lines to F atomically")
    mode.add_argument("--check", metavar="F", help="exit 1 if F differs from what would be written")
    mode.add_argument("--gitlab", action="store_true", help="the key GitLab computes for each cache:key:files")
    parser.add_argument("--rev", default=None, metavar="REV", help="with --gitlab: the commit (default HEAD)")
    parser.add_argument("--ci-file", default=None, metavar="F", help="with --gitlab: the CI file")
    parser.add_argument("--json", action="store_true", help="with --gitlab: JSON output")
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="read this cidash.toml instead of ./cidash.toml / pyproject [tool.cidash]",
    )


def run(args: argparse.Namespace) -> int:
    from cidash.config import load_config
    from cidash.errors import UsageError

    config = load_config(args.config)
    if args.gitlab:
        if args.files:
            raise UsageError("--gitlab takes no FILES: it reads cache:key:files from the CI file")
        return _run_gitlab(args, config.cache_key.ci_file)
    if args.rev or args.ci_file or args.json:
        raise UsageError("--rev, --ci-file and --json go with --gitlab")
    return _run_checksum(args, list(args.files) or list(config.cache_key.files), bool(args.files))


def _out(text: str) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
    sys.stdout.buffer.flush()


def _run_checksum(args: argparse.Namespace, files: list[str], explicit: bool) -> int:
    from cidash.cachekey import check_file, checksum_lines, parse_checksum_lines, write_atomic
    from cidash.config import DEFAULT_CRITICAL_FILES
    from cidash.outfile import check_target

    root = Path(".")
    if args.check:
        target = Path(args.check)
        if not explicit and tuple(files) == DEFAULT_CRITICAL_FILES and target.is_file():
            listed = list(parse_checksum_lines(target.read_bytes().decode("utf-8", "surrogateescape")))
            files = listed or files
        result = check_file(target, files, root)
        if result.ok:
            print(f"{args.check} is up to date ({len(files)} files)")
            return 0
        print(f"{args.check} is stale:")
        for line in result.describe():
            print(f"  {line}")
        print(f"run: cidash key --write {args.check}{'' if not explicit else ' ' + ' '.join(files)}")
        return 1
    content = checksum_lines(files, root)
    if args.write == "-":
        _out(content)
        return 0
    if args.write:
        changed = write_atomic(check_target(args.write, option="--write"), content)
        print(f"{'wrote' if changed else 'unchanged:'} {args.write} ({len(files)} files)")
        return 0
    _out(content)
    return 0


def _run_gitlab(args: argparse.Namespace, default_ci_file: str) -> int:
    from cidash.cachekey import gitlab_key
    from cidash.ciconfig import load_ci, load_ci_text
    from cidash.errors import UsageError
    from cidash.gitrepo import GitRepo, find_root

    if args.ci_file and Path(args.ci_file).is_dir():
        raise UsageError(f"--ci-file {args.ci_file} is a directory, not a CI file")
    repo = GitRepo(find_root(Path(args.ci_file).parent if args.ci_file else None))
    rev = args.rev or "HEAD"
    provider = repo.provider(rev)
    display = str(args.ci_file) if args.ci_file else default_ci_file
    committed = None if args.ci_file else repo.read_file(provider.sha, default_ci_file)
    if committed is not None:
        # The CI file as committed at REV: that is what GitLab reads when it creates the pipeline.
        ci = load_ci_text(committed, display, repo_root=repo.root)
    else:
        ci = load_ci(
            Path(args.ci_file) if args.ci_file else repo.root / default_ci_file, repo_root=repo.root, name=display
        )
    groups: dict[tuple[Any, ...], tuple[CacheSpec, list[CiJob]]] = {}
    for job, cache in ci.cache_entries():
        if cache.key_files:
            groups.setdefault((*cache.identity(), cache.path, cache.line), (cache, []))[1].append(job)
    results: list[tuple[CacheSpec, list[CiJob], GitLabKey]] = []
    for cache, jobs in groups.values():
        key = gitlab_key(
            cache.key_files,
            provider,
            prefix=cache.prefix,
            index=cache.index,
            files_commits=cache.files_commits,
            rev=provider.sha,
        )
        results.append((cache, jobs, key))
    any_default = any((k.commits if k.files_commits else k.content).is_default for _, _, k in results)
    if args.json:
        print(json.dumps(_as_json(display, rev, provider.sha, ci, results), indent=2))
    else:
        _print_text(display, rev, provider.sha, ci, results)
    return 1 if any_default else 0


def _algo_json(a: AlgorithmKey) -> dict[str, Any]:
    return {
        "key": a.key,
        "digest": a.digest,
        "ids": [{"path": p, "id": i} for p, i in a.ids],
        "missing": list(a.missing),
        "reason": a.reason,
    }


def _as_json(
    display: str, rev: str, sha: str, ci: Any, results: list[tuple[CacheSpec, list[CiJob], GitLabKey]]
) -> dict[str, Any]:
    from cidash.cachekey import SUFFIX_EXPLANATION

    return {
        "ci_file": display,
        "rev": rev,
        "sha": sha,
        "caches": [
            {
                "path": cache.path,
                "line": cache.line,
                "jobs": [j.name for j in jobs],
                "index": cache.index,
                "files": list(cache.key_files),
                "files_commits": cache.files_commits,
                "prefix": cache.prefix,
                "key_prefix": key.key_prefix,
                "gitlab_uses": "commits" if cache.files_commits else "content (>= 18.4) / commits (< 18.4)",
                "content": _algo_json(key.content),
                "commits": _algo_json(key.commits),
            }
            for cache, jobs, key in results
        ],
        "suffixes": SUFFIX_EXPLANATION,
        "unresolved": [
            {"kind": u.kind, "what": u.what, "path": u.path, "line": u.line, "reason": u.reason} for u in ci.unresolved
        ],
    }


def _print_text(
    display: str, rev: str, sha: str, ci: Any, results: list[tuple[CacheSpec, list[CiJob], GitLabKey]]
) -> None:
    from cidash.cachekey import SUFFIX_EXPLANATION

    print(f"{display} at {rev} ({sha[:12]})")
    if not results:
        print("no cache: entry uses key: files: or key: files_commits:")
    for cache, jobs, key in results:
        names = ", ".join(j.name for j in jobs[:6]) + (f" and {len(jobs) - 6} more" if len(jobs) > 6 else "")
        kind = "files_commits" if cache.files_commits else "files"
        print()
        print(f"{cache.path}:{cache.line}: cache {cache.index} of {names}")
        print(f"  {kind}: {', '.join(cache.key_files)}")
        prefix = (
            f"prefix {cache.prefix!r}"
            if cache.prefix
            else ("prefix '' (none)" if cache.prefix == "" else f"no prefix: index {cache.index}")
        )
        print(f"  {prefix}")
        algos = [("commits", key.commits, "files_commits, every version")] if cache.files_commits else [
            ("content", key.content, "GitLab >= 18.4"),
            ("commits", key.commits, "GitLab < 18.4"),
        ]  # fmt: skip
        for label, algo, when in algos:
            print(f"  {label:<8} {algo.key}   ({when})")
            for path, oid in algo.ids:
                print(f"           {oid}  {path}")
            print(f"           {algo.reason}")
    for u in ci.unresolved:
        print(f"note: {u.kind} {u.what} not resolved ({u.reason})")
    if results:
        print()
        print(SUFFIX_EXPLANATION)

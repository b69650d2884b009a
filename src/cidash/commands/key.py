"""`cidash key`: the combined checksum of the critical files, and the key GitLab computes for cache:key:files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cidash.cachekey import AlgorithmKey, GitLabKey, GitLabVersion, KeyVariant
    from cidash.ciconfig import CacheSpec, CiJob

GITLAB_VERSION_HELP = "the GitLab version whose cache-key rules to use (e.g. 18.6 or 18.6.1)"
HELP = "combined checksum of the critical files (sha256sum-identical), or the key GitLab computes"
DESCRIPTION = """\
Print the combined checksum of the critical files, one line per file, byte-identical to
`sha256sum FILES...` (names with a backslash, newline or carriage return are escaped the way GNU
sha256sum does it). Commit the result as .cache-key and use it as the single cache:key:files entry:
that design works on every GitLab version.

With no FILES the configured list is used ([cache_key] files; default: go.mod go.sum .gitlab-ci.yml
Dockerfile.ci .mise/config.toml). A missing file is an error naming it, never a shorter key.
--write F writes it atomically (a regular file or a new path; - is stdout); --check F compares F with it
(with no FILES and the built-in default list, F is checked against the files it lists itself).

With --gitlab, print for every cache: entry with key: files: or key: files_commits: in the CI file the
key GitLab assigns at --rev of the local git checkout. The rules depend on the GitLab version
(--gitlab-version, else the one 'cidash sync' recorded from GET /version; unknown: every key that
applies, with the versions that give it):
  digest   files: on >= 18.4: SHA-1 of the sorted blob ids of the matched files; before 18.4 and for
           files_commits: one last-commit id per entry (a git pathspec, patterns not expanded)
  prefix   prefix: if given; else <index>_<stems> for files: on >= 16.0 ([package.json, yarn.lock] ->
           0_package_yarn), the bare index for files_commits: and on 15.7-15.11, none before 15.7
  paths    only leading / are stripped: ./x is never found; only entries with * are patterns
           (* stays in one directory, ** crosses them, **/x needs a /; ? and [...] are literal)
When no listed file is found the key is <prefix>-default and the output says why. GitLab then appends
-<n> after "Clear runner caches" and -protected/-non_protected (the output says which are possible).
Without --ci-file the CI file ([cache_key] ci_file, .gitlab-ci.yml) is read as committed at REV, or from
the working tree when it is not committed. --format json prints one object (schema:
docs/schemas/key-gitlab.schema.json).

Examples:
  cidash key > .cache-key
  cidash key --write .cache-key go.mod go.sum .gitlab-ci.yml Dockerfile.ci .mise/config.toml
  cidash key --check .cache-key
  cidash key --gitlab --rev origin/main
  cidash key --gitlab --gitlab-version 18.6

exit codes: 0 ok; 1 --check found a difference, or --gitlab found a key that falls back to default;
2 a missing file, not a git checkout, unknown REV, bad YAML or bad usage.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILES", help="critical files (default: [cache_key] files)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--write",
        metavar="F",
        help="write the checksum lines to F atomically (temp file + rename; a regular file or a new path, "
        "- is stdout); prints whether F changed",
    )
    mode.add_argument(
        "--check", metavar="F", help="exit 1 if F differs from what would be written, naming the files that changed"
    )
    mode.add_argument("--gitlab", action="store_true", help="the key GitLab computes for each cache:key:files")
    parser.add_argument("--rev", default=None, metavar="REV", help="with --gitlab: the commit (default HEAD)")
    parser.add_argument(
        "--ci-file", default=None, metavar="F", help="with --gitlab: read this CI file from the working tree"
    )
    from cidash.commands.common import add_format_args

    add_format_args(parser, ("text", "json"), default="text", help_extra="; json: not with --write/--check")
    parser.add_argument("--gitlab-version", default=None, metavar="V", help=GITLAB_VERSION_HELP)
    from cidash.commands.common import DB_HELP

    parser.add_argument("--db", metavar="FILE|URL", help=DB_HELP)
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="read this cidash.toml instead of ./cidash.toml / pyproject [tool.cidash]",
    )


def run(args: argparse.Namespace) -> int:
    from cidash.commands.common import output_format
    from cidash.config import load_config
    from cidash.errors import UsageError

    fmt = output_format(args)
    args.json = fmt == "json"
    config = load_config(args.config)
    if args.gitlab:
        if args.files:
            raise UsageError("--gitlab takes no FILES: it reads cache:key:files from the CI file")
        return _run_gitlab(args, config.cache_key.ci_file)
    if args.rev or args.ci_file or args.gitlab_version or args.db:
        raise UsageError("--rev, --ci-file, --gitlab-version and --db go with --gitlab")
    if args.json and (args.write or args.check):
        raise UsageError("--format json goes with plain 'cidash key' or --gitlab, not --write/--check")
    return _run_checksum(args, list(args.files) or list(config.cache_key.files), bool(args.files))


def _say(line: str = "") -> None:
    """One line of text output. Names in it come from the CI file and the repository (anyone who can push a branch
    writes them): an escape sequence or a line break in one is shown as ``\\x1b`` or ``\\n``, never sent to the
    terminal as it is."""
    from cidash.textsafe import clean

    print(clean(line))


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
            _say(f"{args.check} is up to date ({len(files)} files)")
            return 0
        _say(f"{args.check} is stale:")
        for line in result.describe():  # names from the committed file and the repository: shown, never obeyed
            _say(f"  {line}")
        _say(f"run: cidash key --write {args.check}{'' if not explicit else ' ' + ' '.join(files)}")
        return 1
    content = checksum_lines(files, root)
    if args.json:
        from cidash.cachekey import parse_checksum_lines
        from cidash.commands.common import json_document

        lines = parse_checksum_lines(content)
        doc = {"files": [{"path": path, "sha256": digest} for path, digest in lines.items()], "content": content}
        _out(json_document(doc))
        return 0
    if args.write == "-":
        _out(content)
        return 0
    if args.write:
        changed = write_atomic(check_target(args.write, option="--write"), content)
        _say(f"{'wrote' if changed else 'unchanged:'} {args.write} ({len(files)} files)")
        return 0
    _out(content)
    return 0


def _gitlab_version(args: argparse.Namespace) -> tuple[GitLabVersion | None, str]:
    """The GitLab version to compute for, and where it came from: --gitlab-version, else the version 'cidash
    sync' recorded in the store (when the store exists and its projects agree on one), else unknown."""
    from cidash.cachekey import GitLabVersion
    from cidash.config import load_config
    from cidash.errors import CidashError, UsageError

    if args.gitlab_version:
        try:
            return GitLabVersion.parse(args.gitlab_version), "--gitlab-version"
        except CidashError:
            raise UsageError(
                f"--gitlab-version {args.gitlab_version!r} is not a version (e.g. 18.6 or 18.6.1)"
            ) from None
    try:
        from cidash.config import is_store_url
        from cidash.store import Store

        target = str(args.db) if args.db else load_config(args.config).store_target()
        if not is_store_url(target) and not Path(target).expanduser().is_file():
            return None, "unknown"
        with Store.open(target, readonly=True) as store:
            recorded = store.instance_version()
    except CidashError:
        return None, "unknown"
    version = GitLabVersion.maybe(recorded)
    return version, ("recorded by cidash sync" if version else "unknown")


def _run_gitlab(args: argparse.Namespace, default_ci_file: str) -> int:
    from cidash.actions.keys import gitlab_keys_at
    from cidash.errors import UsageError

    if args.ci_file and Path(args.ci_file).is_dir():
        raise UsageError(f"--ci-file {args.ci_file} is a directory, not a CI file")
    version, version_source = _gitlab_version(args)
    rev = args.rev or "HEAD"
    keys = gitlab_keys_at(
        None, default_ci_file, rev=rev, ci_file=Path(args.ci_file) if args.ci_file else None, version=version
    )
    display, ci = keys.display, keys.ci
    results = [(cache, list(jobs), key) for cache, jobs, key in keys.results]
    provider_sha = keys.sha
    any_default = any(k.is_default for _, _, k in results)
    if args.json:
        from cidash.commands.common import json_document

        sys.stdout.write(
            json_document(_as_json(display, rev, provider_sha, ci, results, version_source=version_source))
        )
    else:
        _print_text(display, rev, provider_sha, ci, results, version_source=version_source)
    return 1 if any_default else 0


def _algo_json(a: AlgorithmKey) -> dict[str, Any]:
    return {
        "digest": a.digest,
        "ids": [{"path": p, "id": i} for p, i in a.ids],
        "missing": list(a.missing),
        "notes": list(a.notes),
    }


def _variant_json(v: KeyVariant) -> dict[str, Any]:
    return {
        "key": v.key,
        "digest": v.digest,
        "algorithm": v.algorithm,
        "prefix": v.prefix_used,
        "versions": list(v.versions),
        "reason": v.reason,
    }


def _suffixes(cache: CacheSpec, key: GitLabKey) -> list[tuple[str, str]]:
    from cidash.cachekey import possible_suffixes

    return [(s or "(none)", why) for s, why in possible_suffixes(key.version, unprotect=cache.unprotect)]


def _as_json(
    display: str,
    rev: str,
    sha: str,
    ci: Any,
    results: list[tuple[CacheSpec, list[CiJob], GitLabKey]],
    *,
    version_source: str,
) -> dict[str, Any]:
    from cidash.cachekey import SUFFIX_EXPLANATION, runner_rewrite_note

    version = next((str(k.version) for _, _, k in results if k.version), None)
    return {
        "ci_file": display,
        "rev": rev,
        "sha": sha,
        "gitlab_version": version,
        "gitlab_version_source": version_source if version else "unknown",
        "caches": [
            {
                "path": cache.path,
                "line": cache.line,
                "jobs": [j.name for j in jobs],
                "index": cache.index,
                "files": list(cache.key_files),
                "files_commits": cache.files_commits,
                "prefix": cache.prefix,
                "key": chosen.key if (chosen := key.chosen) else None,
                "variants": [_variant_json(v) for v in key.variants()],
                "content": _algo_json(key.content),
                "commits": _algo_json(key.commits),
                "suffixes": [{"suffix": s, "why": why} for s, why in _suffixes(cache, key)],
                "runner_rewriting": [n for v in key.variants() if (n := runner_rewrite_note(v.key))],
            }
            for cache, jobs, key in results
        ],
        "suffixes": SUFFIX_EXPLANATION,
        "unresolved": [
            {"kind": u.kind, "what": u.what, "path": u.path, "line": u.line, "reason": u.reason} for u in ci.unresolved
        ],
    }


def _print_text(
    display: str,
    rev: str,
    sha: str,
    ci: Any,
    results: list[tuple[CacheSpec, list[CiJob], GitLabKey]],
    *,
    version_source: str,
) -> None:
    from cidash.cachekey import SUFFIX_EXPLANATION, runner_rewrite_note
    from cidash.formatting import fmt_list

    _say(f"{display} at {rev} ({sha[:12]})")
    version = next((k.version for _, _, k in results if k.version), None)
    if version is not None:
        _say(f"GitLab {version} ({version_source})")
    elif results:
        _say(
            "GitLab version unknown (no --gitlab-version, none recorded by 'cidash sync'): "
            "each key that applies, with the versions that give it"
        )
    if not results:
        _say("no cache: entry uses key: files: or key: files_commits:")
    for cache, jobs, key in results:
        names = fmt_list([j.name for j in jobs], 6)
        kind = "files_commits" if cache.files_commits else "files"
        _say()
        _say(f"{cache.path}:{cache.line}: cache {cache.index} of {names}")
        _say(f"  {kind}: {', '.join(cache.key_files)}")
        for variant in key.variants():
            algo = key.content if variant.algorithm == "content" else key.commits
            what = "blob ids" if variant.algorithm == "content" else "last-commit ids"
            _say(f"  key      {variant.key}   ({variant.when}; {what})")
            for path, oid in algo.ids:
                _say(f"           {oid}  {path}")
            _say(f"           {variant.reason}")
            note = runner_rewrite_note(variant.key)
            if note:
                _say(f"           the printed key can differ: {note}")
        suffixes = "; ".join(f"{s} ({why})" for s, why in _suffixes(cache, key))
        _say(f"  suffixes {suffixes}")
    for u in ci.unresolved:
        _say(f"note: {u.kind} {u.what} not resolved ({u.reason})")
    if results:
        _say()
        _say(SUFFIX_EXPLANATION)

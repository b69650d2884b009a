"""`cidash lint`: cache-key and image-build findings for a .gitlab-ci.yml."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "cache-key and image-build findings for a .gitlab-ci.yml, with stable rule ids"
DESCRIPTION = """\
Check a .gitlab-ci.yml for cache keys that can go stale and for a fragile CI-image build. The YAML is
loaded safely (only GitLab's !reference tag is accepted); local include:, default:, extends:, anchors
and merge keys are resolved; remote/project/template includes are reported as not resolved.

Output: one line per finding, `path:line: RULE-ID severity message`, then a summary line;
--format json prints {"path", "ok", "findings": [{rule_id, severity, path, line, message}], "summary"}.

Rules:
  CK001 error    more than 2 entries in cache:key:files (GitLab rejects the pipeline unless the
                 instance raised the limit to 10 with increase_ci_cache_key_files_limit; files: only)
  CK002 error    a cache:key:files entry written by a job (script redirect, tee, artifacts:paths):
                 GitLab computes the key at pipeline creation, so it is <prefix>-default forever
                 (with no prefix: 0_<stems>-default on GitLab >= 16.0, e.g. 0_-default for .cache-key)
                 (warning when the file is also committed: the job's copy never reaches the key;
                 a job that only regenerates it to diff/cmp/--check is a verifier, not a writer)
  CK003 error    a cache:key:files entry not committed at HEAD (same consequence)
  CK004 error    the committed combined-checksum file ([cache_key] file) is stale or a file is missing
  CK005 error    a CI/CD variable inside cache:key:files (never expanded there)
  CK006 error    cache:key with both files and files_commits
  CK007 info     cache key from a dotenv variable at run time (works, undocumented; verify it)
  CK008 warning  several jobs write one cache key without a shared resource_group (last one wins)
  CK009 error    a key prefix GitLab rejects ('/', also URL-escaped, or '.'/'..'); warning for a
                 whitespace-only prefix (dropped)
  CK010 error    a cache:key:files entry GitLab never finds as written: only leading '/' are stripped,
                 './path', '..' and '//' are looked up verbatim (the key is <prefix>-default forever)
  IM001 warning  job image not pinned (':latest' or no tag)
  IM002 warning  image-build job ([image] build_job) uses docker pull to test existence
  IM003 warning  image-build job without retry on runner_system_failure/stuck_or_timeout_failure
  CI001 info     include/extends/!reference not resolved (error for an unknown extends/reference
                 when every include was resolved)
  CI002 info     a check was skipped (no image-build job, no git checkout)

CI_FILE defaults to [cache_key] ci_file (.gitlab-ci.yml). Checks that need the repository (CK003, CK004)
use the git checkout containing CI_FILE, or --repo DIR. --gitlab-version V names the fallback key for
that GitLab version (default: the current rule, with the older ones it differs from).

exit codes: 0 no error-level finding; 1 at least one error; 2 missing file, bad YAML (with line and
column) or bad usage.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ci_file", nargs="?", default=None, metavar="CI_FILE", help="default: .gitlab-ci.yml")
    from cidash.commands.common import add_format_args

    add_format_args(parser, ("text", "json"), default="text")
    parser.add_argument("--repo", default=None, metavar="DIR", help="repository directory (default: CI_FILE's)")
    parser.add_argument(
        "--gitlab-version",
        default=None,
        metavar="V",
        help="the GitLab version whose cache-key rules to use (e.g. 18.6 or 18.6.1)",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="read this cidash.toml instead of ./cidash.toml / pyproject [tool.cidash]",
    )


def run(args: argparse.Namespace) -> int:
    from cidash.cachekey import GitLabVersion
    from cidash.ciconfig import load_ci
    from cidash.cilint import format_text, lint, summary, to_json
    from cidash.commands.common import json_document, output_format
    from cidash.config import load_config
    from cidash.errors import UsageError
    from cidash.textsafe import clean

    fmt = output_format(args)
    version = GitLabVersion.maybe(args.gitlab_version)
    if args.gitlab_version and version is None:
        raise UsageError(f"--gitlab-version {args.gitlab_version!r} is not a version (e.g. 18.6 or 18.6.1)")
    config = load_config(args.config)
    ci_file = Path(args.ci_file or config.cache_key.ci_file)
    repo_root = Path(args.repo) if args.repo else _repo_root(ci_file)
    ci = load_ci(ci_file, repo_root=repo_root)
    findings = lint(ci, repo_root=repo_root, settings=config, gitlab_version=version)
    if fmt == "json":
        sys.stdout.write(json_document(to_json(findings, path=str(ci_file))))
    else:
        print(clean(format_text(findings), keep_newlines=True), end="")  # job names and keys from the CI file
    return 1 if summary(findings)["error"] else 0


def _repo_root(ci_file: Path) -> Path:
    """The top of the git checkout holding CI_FILE, else its directory."""
    from cidash.errors import GitError
    from cidash.gitrepo import find_root

    directory = ci_file.parent if str(ci_file.parent) else Path(".")
    if not directory.is_dir():
        return directory
    try:
        return find_root(directory)
    except GitError:
        return directory

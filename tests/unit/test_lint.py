"""cidash lint: fixture CI files with expected findings, git-backed checks, the command's contract."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from cidash.cachekey import GitLabVersion, checksum_lines
from cidash.ciconfig import load_ci, load_ci_text
from cidash.cilint import RULES, lint, written_paths
from cidash.cli import main
from cidash.config import config_from_dict
from gitrepo_helpers import commit, init_repo
from paths import DATA, REPO_ROOT

CI_DATA = DATA / "ci"
FIXTURES = sorted(p.stem for p in CI_DATA.glob("*.yml"))


def _expected(name: str) -> list[tuple[int, str, str]]:
    rows = []
    for line in (CI_DATA / f"{name}.expected").read_text().splitlines():
        if line.strip():
            n, rule, severity = line.split()
            rows.append((int(n), rule, severity))
    return sorted(rows)


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_findings(name: str) -> None:
    ci = load_ci(CI_DATA / f"{name}.yml")
    findings = lint(ci, repo_root=None)
    assert sorted((f.line, f.rule_id, f.severity) for f in findings) == _expected(name)
    for f in findings:
        assert f.rule_id in RULES and f.path == str(CI_DATA / f"{name}.yml")


def test_fixture_set_is_complete() -> None:
    assert {"broken_setup_job", "committed_cache_key", "patterns", "three_files", "anchors_extends"} <= set(FIXTURES)
    assert {"dotenv_runtime"} <= set(FIXTURES)


def test_broken_design_message_names_the_real_prefix() -> None:
    findings = lint(load_ci(CI_DATA / "broken_setup_job.yml"), repo_root=None)
    ck002 = [f for f in findings if f.rule_id == "CK002"]
    assert ck002 and all(
        "GitLab computes this key at pipeline creation; the key will be `deps-default` forever" in f.message
        for f in ck002
    )
    assert "compute-cache-key" in ck002[0].message
    index_prefixed = lint(load_ci(CI_DATA / "anchors_extends.yml"), repo_root=None)
    # No prefix: on GitLab >= 16.0 the key is '0_' + the stem of '.cache-key' (empty) + '-default'.
    (ck002,) = [f for f in index_prefixed if f.rule_id == "CK002"]
    assert "the key will be `0_-default` (GitLab >= 16.0; `0-default` on GitLab 15.7-15.11; " in ck002.message
    pinned = lint(load_ci(CI_DATA / "anchors_extends.yml"), repo_root=None, gitlab_version=GitLabVersion(15, 9))
    assert any("the key will be `0-default` forever" in f.message for f in pinned if f.rule_id == "CK002")


def test_partial_key_is_reported_as_ignored() -> None:
    text = """\
setup: {script: ["sha256sum a > .cache-key"]}
job:
  cache: {key: {files: [.cache-key, go.mod]}, policy: pull}
  script: [x]
"""
    (f,) = [f for f in lint(load_ci_text(text, "ci.yml"), repo_root=None) if f.rule_id == "CK002"]
    assert "ignores it; the key only follows go.mod" in f.message


def _repo_with(tmp_path: Path, fixture: str, files: dict[str, str]) -> Path:
    repo = init_repo(tmp_path / "repo")
    shutil.copy(CI_DATA / f"{fixture}.yml", repo / ".gitlab-ci.yml")
    commit(repo, "init", files)
    return repo


def test_committed_file_rewritten_by_a_job_is_a_warning_and_verifiers_are_fine(tmp_path: Path) -> None:
    text = (
        "regen:\n  script: ['sha256sum go.mod > .cache-key']\n"
        "verify:\n  script: ['sha256sum go.mod > .cache-key && git diff --exit-code .cache-key']\n"
        "job:\n  cache: {key: {files: [.cache-key]}, policy: pull}\n  script: [x]\n"
    )
    key = hashlib.sha256(b"m").hexdigest() + "  go.mod\n"
    repo = _repo_with(tmp_path, "patterns", {".gitlab-ci.yml": text, "go.mod": "m", ".cache-key": key})
    findings = [f for f in lint(load_ci(repo / ".gitlab-ci.yml"), repo_root=repo) if f.rule_id.startswith("CK")]
    (f,) = findings
    assert (f.rule_id, f.severity) == ("CK002", "warning") and "job 'regen'" in f.message
    verifier_only = text.replace("regen:\n  script: ['sha256sum go.mod > .cache-key']\n", "")
    ci = load_ci_text(verifier_only, "ci.yml")
    assert not [f for f in lint(ci, repo_root=repo) if f.rule_id.startswith("CK")]


def test_untracked_key_file_is_ck003(tmp_path: Path) -> None:
    text = "job:\n  cache:\n    key:\n      files: [.cache-key]\n      prefix: deps\n    policy: pull\n  script: [x]\n"
    repo = _repo_with(tmp_path, "patterns", {".gitlab-ci.yml": text, "go.mod": "m"})
    (repo / ".cache-key").write_text("on disk, never committed\n")
    findings = lint(load_ci(repo / ".gitlab-ci.yml"), repo_root=repo)
    (f,) = [f for f in findings if f.severity == "error"]
    assert (f.rule_id, f.line) == ("CK003", 4)
    assert "not committed at HEAD" in f.message and "`deps-default` forever" in f.message


def test_patterns_checked_against_head(tmp_path: Path) -> None:
    repo = _repo_with(tmp_path, "patterns", {"go.mod": "m", "go.sum": "s"})
    assert [f.rule_id for f in lint(load_ci(repo / ".gitlab-ci.yml"), repo_root=repo)] == ["CK003"]  # no Dockerfile.ci
    commit(repo, "add", {"build/Dockerfile.ci": "FROM x\n"})
    assert lint(load_ci(repo / ".gitlab-ci.yml"), repo_root=repo) == []


def test_committed_design_is_clean_and_stale_file_is_ck004(tmp_path: Path) -> None:
    files = {"go.mod": "module x\n", "requirements.lock": "a==1\n"}
    repo = init_repo(tmp_path / "repo")
    for name, content in files.items():
        (repo / name).write_text(content)
    (repo / ".cache-key").write_text(checksum_lines(list(files), repo))
    commit(repo, "init", {".gitlab-ci.yml": (CI_DATA / "committed_cache_key.yml").read_text()})
    settings = config_from_dict({"cache_key": {"files": list(files)}})
    ci = load_ci(repo / ".gitlab-ci.yml")
    assert lint(ci, repo_root=repo, settings=settings) == []
    (repo / "requirements.lock").write_text("a==2\n")
    (f,) = lint(ci, repo_root=repo, settings=settings)
    assert (f.rule_id, f.severity, f.path) == ("CK004", "error", ".cache-key")
    assert "changed: requirements.lock" in f.message
    (repo / "go.mod").unlink()
    (f,) = lint(ci, repo_root=repo, settings=settings)
    assert f.rule_id == "CK004" and "'go.mod' does not exist" in f.message


def test_concurrent_writers() -> None:
    text = """\
a: {cache: {key: deps, paths: [x]}, script: [x]}
b: {cache: {key: deps, paths: [x], policy: push}, script: [x]}
c: {cache: {key: deps, paths: [x], policy: pull}, script: [x]}
d: {cache: {key: other, paths: [x]}, script: [x]}
"""
    findings = [f for f in lint(load_ci_text(text, "ci.yml"), repo_root=None) if f.rule_id == "CK008"]
    assert sorted(f.line for f in findings) == [1, 2]
    assert all("concurrent writers; last one wins" in f.message for f in findings)
    per_job = text.replace("key: deps,", "key: deps-$CI_JOB_NAME_SLUG,")
    assert not [f for f in lint(load_ci_text(per_job, "ci.yml"), repo_root=None) if f.rule_id == "CK008"]
    serialised = text.replace("script: [x]}", "script: [x], resource_group: cache_updates}")
    assert not [f for f in lint(load_ci_text(serialised, "ci.yml"), repo_root=None) if f.rule_id == "CK008"]


@pytest.mark.parametrize("grouped", [False, True])
def test_a_key_written_by_many_jobs_names_a_few_of_them_in_each_finding(grouped: bool) -> None:
    """Each writer's finding names ten writers and counts the rest: listing all of them in each finding made the
    output (and lint's memory) grow with the square of the writers."""
    jobs = [f"job{i:03}" for i in range(300)]
    text = "".join(
        f"{name}: {{cache: {{key: deps, paths: [x]}}, script: [x]"
        + (f", resource_group: g{i % 2}" if grouped else "")
        + "}\n"
        for i, name in enumerate(jobs)
    )
    findings = [f for f in lint(load_ci_text(text, "ci.yml"), repo_root=None) if f.rule_id == "CK008"]
    assert len(findings) == 300
    for f in findings:
        assert "(job000, job001, job002" in f.message and "job009 and 290 more)" in f.message
        assert len(f.message) < 400


def test_build_job_name_comes_from_config() -> None:
    text = "make-image:\n  image: docker:27.3.1\n  script: [docker pull img && exit 0]\n"
    settings = config_from_dict({"image": {"build_job": "make-image"}})
    rules = sorted(f.rule_id for f in lint(load_ci_text(text, "ci.yml"), repo_root=None, settings=settings))
    assert rules == ["IM002", "IM003"]


def test_unresolved_extends_is_error_unless_includes_are_open() -> None:
    closed = lint(load_ci_text("job: {extends: .gone, script: [x]}\n", "ci.yml"), repo_root=None)
    assert [(f.rule_id, f.severity) for f in closed if f.rule_id == "CI001"] == [("CI001", "error")]
    text = "include: {remote: 'https://example.invalid/t.yml'}\njob: {extends: .gone, script: [x]}\n"
    opened = [f for f in lint(load_ci_text(text, "ci.yml"), repo_root=None) if f.rule_id == "CI001"]
    assert {f.severity for f in opened} == {"info"} and len(opened) == 2


# -- the command ------------------------------------------------------------------------------------------------


def _copy_fixtures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "plain"  # not a git checkout: the output must not depend on this repository's files
    shutil.copytree(CI_DATA, work)
    monkeypatch.chdir(work)


def test_cli_text_and_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _copy_fixtures(tmp_path, monkeypatch)
    assert main(["lint", "broken_setup_job.yml"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "2 error(s), 0 warning(s), 2 info"
    assert any(line.startswith("broken_setup_job.yml:20: CK002 error ") for line in out)
    assert main(["lint", "committed_cache_key.yml"]) == 0


def test_cli_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _copy_fixtures(tmp_path, monkeypatch)
    assert main(["lint", "three_files.yml", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["summary"] == {"error": 1, "warning": 0, "info": 1} and data["ok"] is False
    skipped, f = data["findings"]
    assert skipped["rule_id"] == "CI002" and "not inside a git checkout" in skipped["message"]
    assert set(f) == {"rule_id", "severity", "path", "line", "message"} and f["rule_id"] == "CK001"


def test_cli_bad_yaml_and_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.yml").write_text("job:\n  script: [oops\n")
    assert main(["lint", "bad.yml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cidash: error: bad.yml:3:1: invalid YAML") and err.count("\n") == 1
    assert main(["lint", "absent.yml"]) == 2
    assert "absent.yml does not exist" in capsys.readouterr().err


def test_help_names_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["lint", "--help"])
    out = capsys.readouterr().out
    assert all(rule in out for rule in RULES)


def test_readme_documents_every_rule() -> None:
    readme = (REPO_ROOT / "docs" / "commands.md").read_text()
    assert all(f"`{rule}`" in readme for rule in RULES)


def test_written_paths_finds_redirects_tee_copies_and_artifacts() -> None:
    text = """\
j:
  script:
    - cp /tmp/key .cache-key
    - mv -f a b && echo x > ./out.txt 2>&1
    - sha256sum a | tee -a "$CI_PROJECT_DIR/k2" >/dev/null
    - cmd 2>&1 | grep x >> log.txt
  artifacts: {paths: [dist/]}
"""
    found = {(p, line) for p, _, line in written_paths(load_ci_text(text, "ci.yml").jobs[0])}
    assert found == {(".cache-key", 3), ("b", 4), ("out.txt", 4), ("k2", 5), ("log.txt", 6), ("dist/", 7)}
    consumer = text + "c:\n  cache: {key: {files: [dist/key.txt]}, policy: pull}\n  script: [x]\n"
    (f,) = [f for f in lint(load_ci_text(consumer, "ci.yml"), repo_root=None) if f.rule_id == "CK002"]
    assert "artifacts:paths" in f.message and "`0_dist/key-default` (GitLab >= 16.0;" in f.message


def test_prefixes_gitlab_rejects_or_drops() -> None:
    text = """\
a:
  cache: {key: {files: [go.mod], prefix: "deps/x"}}
  script: [x]
b:
  cache: {key: {files: [go.mod], prefix: "deps%2Fx"}}
  script: [x]
c:
  cache: {key: {files: [go.mod], prefix: ".."}}
  script: [x]
d:
  cache: {key: {files: [go.mod], prefix: "  "}}
  script: [x]
e:
  cache: {key: "a/b"}
  script: [x]
f:
  cache: {key: {files: [go.mod], prefix: "deps.v2"}}
  script: [x]
"""
    found = [(f.line, f.severity) for f in lint(load_ci_text(text, "ci.yml"), repo_root=None) if f.rule_id == "CK009"]
    assert found == [(2, "error"), (5, "error"), (8, "error"), (11, "warning"), (14, "error")]


def test_relative_entries_are_never_found() -> None:
    text = "j:\n  cache: {key: {files: [./go.mod, /go.sum]}}\n  script: [x]\n"
    (f,) = [f for f in lint(load_ci_text(text, "ci.yml"), repo_root=None) if f.rule_id == "CK010"]
    assert "'./go.mod'" in f.message and "write 'go.mod'" in f.message and "only leading '/'" in f.message
    assert "the key only follows /go.sum" in f.message  # a leading '/' is fine: GitLab strips it
    assert f.severity == "error" and "from GitLab 18.4 on" in f.message


def test_files_commits_entries_are_git_pathspecs() -> None:
    """files_commits: entries reach git as pathspecs (Gitaly LastCommitForPath): ./go.mod and a//b count."""
    text = "j:\n  cache: {key: {files_commits: [./go.mod, web//yarn.lock]}}\n  script: [x]\n"
    found = [f for f in lint(load_ci_text(text, "ci.yml"), repo_root=None) if f.rule_id == "CK010"]
    assert [f.severity for f in found] == ["warning", "warning"]
    assert "git reads it as 'go.mod'" in found[0].message and "write 'web/yarn.lock'" in found[1].message


def test_too_many_entries_names_the_raised_limit() -> None:
    three = "j:\n  cache: {key: {files: [a, b, c]}}\n  script: [x]\n"
    (f,) = [f for f in lint(load_ci_text(three, "ci.yml"), repo_root=None) if f.rule_id == "CK001"]
    assert "unless the instance raised the limit to 10" in f.message
    commits = "j:\n  cache: {key: {files_commits: [a, b, c]}}\n  script: [x]\n"
    (g,) = [f for f in lint(load_ci_text(commits, "ci.yml"), repo_root=None) if f.rule_id == "CK001"]
    assert "unless" not in g.message and "at most 2)" in g.message

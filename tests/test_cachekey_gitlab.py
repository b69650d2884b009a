"""GitLab's cache:key:files key on real repositories, checked against ids computed independently with git,
and the `cidash key` command end to end."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cidash.cachekey import gitlab_key
from cidash.cli import main
from cidash.gitrepo import GitRepo
from test_gitrepo_helpers import commit, git, init_repo


def _expected(repo: Path, rev: str, paths: list[str], prefix: str) -> tuple[str, str]:
    """Both keys computed straight from git, without cidash: (content key, commits key)."""
    blobs = []
    commits = []
    for p in paths:
        proc = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", f"{rev}:{p}"], cwd=repo, capture_output=True, text=True, check=False
        )
        if proc.returncode == 0:
            blobs.append(proc.stdout.strip())
        last = git(repo, "log", "-1", "--format=%H", rev, "--", p)
        if last:
            commits.append(last)

    def digest(ids: list[str]) -> str:
        return hashlib.sha1("-".join(sorted(set(ids))).encode()).hexdigest() if ids else "default"

    return f"{prefix}-{digest(blobs)}", f"{prefix}-{digest(commits)}"


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, list[str]]:
    repo = init_repo(tmp_path / "repo")
    c1 = commit(repo, "one", {"go.mod": "module a\n", "go.sum": "s1\n", "Dockerfile.ci": "FROM x\n"})
    c2 = commit(repo, "two", {"go.sum": "s2\n", "tools/go.mod": "module t\n", "a/b/c/deep.lock": "d\n"})
    git(repo, "mv", "Dockerfile.ci", "ci.Dockerfile")
    c3 = commit(repo, "rename")
    git(repo, "rm", "-q", "go.sum")
    c4 = commit(repo, "delete go.sum")
    return repo, [c1, c2, c3, c4]


CASES = [
    (["go.mod", "go.sum"], "deps"),
    (["Dockerfile.ci"], "img"),  # renamed away at c3
    (["go.sum", "missing.txt"], "0"),  # deleted at c4
    (["missing.txt"], "m"),
    (["ci.Dockerfile", "go.mod"], "x"),
]


@pytest.mark.parametrize(("files", "prefix"), CASES)
def test_both_algorithms_match_git_at_every_commit(
    history: tuple[Path, list[str]], files: list[str], prefix: str
) -> None:
    repo, shas = history
    g = GitRepo(repo)
    for sha in shas:
        k = gitlab_key(files, g.provider(sha), prefix=None if prefix == "0" else prefix, index=0, rev=sha)
        content, commits = _expected(repo, sha, files, prefix)
        assert (k.content.key, k.commits.key) == (content, commits), (sha, files)


def test_missing_everywhere_gives_default_in_words(history: tuple[Path, list[str]]) -> None:
    repo, shas = history
    k = gitlab_key([".cache-key"], GitRepo(repo).provider(shas[-1]), prefix="deps", rev=shas[-1])
    assert k.content.key == "deps-default" and k.commits.key == "deps-default"
    assert f"no listed file exists at {shas[-1][:12]}" in k.content.reason


def test_deleted_file_still_counts_for_commits_algorithm(history: tuple[Path, list[str]]) -> None:
    repo, shas = history
    k = gitlab_key(["go.sum"], GitRepo(repo).provider(shas[-1]), prefix="deps", rev=shas[-1])
    assert k.content.is_default
    assert k.commits.digest == hashlib.sha1(shas[-1].encode()).hexdigest()
    assert "no longer exists" in k.commits.reason


def test_globs_expand_against_the_tree_at_rev(history: tuple[Path, list[str]]) -> None:
    repo, shas = history
    g = GitRepo(repo)
    k = gitlab_key(["**/go.mod", "**/*.lock"], g.provider(shas[1]), prefix="deps", rev=shas[1])
    matched = ["go.mod", "tools/go.mod", "a/b/c/deep.lock"]
    assert sorted(p for p, _ in k.content.ids) == sorted(matched)
    assert (k.content.key, k.commits.key) == _expected(repo, shas[1], matched, "deps")
    # `*` does not cross a slash: only the top-level go.mod at the first commit.
    k1 = gitlab_key(["go.*"], g.provider(shas[0]), prefix="p", rev=shas[0])
    assert [p for p, _ in k1.content.ids] == ["go.mod", "go.sum"]
    assert (k1.content.key, k1.commits.key) == _expected(repo, shas[0], ["go.mod", "go.sum"], "p")


# -- the command ------------------------------------------------------------------------------------------------


def test_cli_key_prints_sha256sum_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "a b").write_text("1")
    (work / "c\\d").write_text("2")
    monkeypatch.chdir(work)
    assert main(["key", "a b", "c\\d"]) == 0
    out = capsys.readouterr().out
    sha256sum = shutil.which("sha256sum")
    if sha256sum:
        assert out == subprocess.run([sha256sum, "a b", "c\\d"], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[1].startswith("\\")


def test_cli_key_write_and_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "go.mod").write_text("m")
    (work / "go.sum").write_text("s")
    monkeypatch.chdir(work)
    assert main(["key", "--write", ".cache-key", "go.mod", "go.sum"]) == 0
    assert "wrote .cache-key" in capsys.readouterr().out
    assert main(["key", "--check", ".cache-key", "go.mod", "go.sum"]) == 0
    (work / "go.sum").write_text("s2")
    assert main(["key", "--check", ".cache-key", "go.mod", "go.sum"]) == 1
    out = capsys.readouterr().out
    assert "changed: go.sum" in out and "go.mod" not in out.split("stale:")[1].split("run:")[0]
    # With no FILES and the built-in default list, the file is checked against the files it lists.
    assert main(["key", "--check", ".cache-key"]) == 1
    assert main(["key", "--write", ".cache-key", "go.mod", "go.sum"]) == 0
    assert main(["key", "--check", ".cache-key"]) == 0


def test_cli_key_missing_file_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["key", "nope.lock"]) == 2
    err = capsys.readouterr().err
    assert "'nope.lock' does not exist" in err and "Traceback" not in err and err.count("\n") == 1


def test_cli_key_uses_config_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "cidash.toml").write_text('[cache_key]\nfiles = ["one.txt"]\n')
    (work / "one.txt").write_text("1\n")
    monkeypatch.chdir(work)
    assert main(["key"]) == 0
    assert capsys.readouterr().out == f"{hashlib.sha256(b'1' + bytes([10])).hexdigest()}  one.txt\n"


CI = """\
setup:
  script: ["sha256sum go.mod > .cache-key"]
test:
  cache:
    - key: plain
    - key:
        files: [go.mod, "**/*.lock"]
  script: [go test]
broken:
  cache:
    key:
      files: [.cache-key]
      prefix: deps
  script: [go test]
"""


def test_cli_key_gitlab_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(tmp_path / "repo")
    sha = commit(repo, "one", {".gitlab-ci.yml": CI, "go.mod": "m\n", "x/y.lock": "l\n"})
    monkeypatch.chdir(repo)
    assert main(["key", "--gitlab", "--json"]) == 1  # the broken entry falls back to default
    data = json.loads(capsys.readouterr().out)
    assert data["sha"] == sha
    by_job = {c["jobs"][0]: c for c in data["caches"]}
    good = by_job["test"]
    assert good["index"] == 1 and good["key_prefix"] == "1"
    content, commits = _expected(repo, sha, ["go.mod", "x/y.lock"], "1")
    assert (good["content"]["key"], good["commits"]["key"]) == (content, commits)
    assert by_job["broken"]["content"]["key"] == "deps-default"
    assert "falls back to 'deps-default'" in by_job["broken"]["content"]["reason"]
    assert "-protected" in data["suffixes"]


def test_cli_key_gitlab_text_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(tmp_path / "repo")
    commit(repo, "one", {".gitlab-ci.yml": CI.split("broken:", maxsplit=1)[0], "go.mod": "m\n"})
    monkeypatch.chdir(repo)
    assert main(["key", "--gitlab"]) == 0
    out = capsys.readouterr().out
    assert "content  1-" in out and "commits  1-" in out and "Clear runner caches" in out
    assert main(["key", "--gitlab", "--rev", "nope"]) == 2
    assert "unknown revision 'nope'" in capsys.readouterr().err
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    assert main(["key", "--gitlab"]) == 2
    assert "not inside a git checkout" in capsys.readouterr().err


def test_cli_key_gitlab_reads_the_ci_file_as_committed_at_rev(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(tmp_path / "repo")
    old = "j:\n  cache: {key: {files: [a.lock], prefix: old}}\n  script: [x]\n"
    first = commit(repo, "one", {".gitlab-ci.yml": old, "a.lock": "1\n"})
    commit(repo, "two", {".gitlab-ci.yml": old.replace("old", "new")})
    (repo / ".gitlab-ci.yml").write_text(old.replace("old", "uncommitted"))
    monkeypatch.chdir(repo)
    assert main(["key", "--gitlab", "--json", "--rev", first]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["caches"]
    assert entry["content"]["key"] == _expected(repo, first, ["a.lock"], "old")[0]
    assert main(["key", "--gitlab", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["caches"][0]["prefix"] == "new"
    assert main(["key", "--gitlab", "--json", "--ci-file", ".gitlab-ci.yml"]) == 0
    assert json.loads(capsys.readouterr().out)["caches"][0]["prefix"] == "uncommitted"

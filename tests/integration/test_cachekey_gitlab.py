"""GitLab's cache:key:files key on real repositories, checked against ids computed independently with git,
and the `cidash key` command end to end."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cidash.cachekey import GitLabKey, GitLabVersion, gitlab_key
from cidash.cli import main
from cidash.gitrepo import GitRepo
from gitrepo_helpers import commit, git, init_repo


def _expected(repo: Path, rev: str, paths: list[str], prefix: str, entries: list[str] | None = None) -> tuple[str, str]:
    """Both keys computed straight from git, without cidash: (content key: the blob ids of ``paths``, commits
    key: one ``git log -1 -- ENTRY`` per entry, a plain git pathspec; ``entries`` default to ``paths``)."""
    blobs = []
    commits = []
    for p in paths:
        proc = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", f"{rev}:{p}"], cwd=repo, capture_output=True, text=True, check=False
        )
        if proc.returncode == 0:
            blobs.append(proc.stdout.strip())
    for entry in entries if entries is not None else paths:
        last = git(repo, "log", "-1", "--format=%H", rev, "--", entry)
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
    (["go.sum", "missing.txt"], "0_go_missing"),  # deleted at c4; no prefix: (GitLab >= 16.0)
    (["missing.txt"], "m"),
    (["ci.Dockerfile", "go.mod"], "x"),
]
NEW, OLD = GitLabVersion(18, 6), GitLabVersion(18, 3)


def _keys(k: GitLabKey) -> tuple[str, str]:
    """(the key GitLab 18.6 computes: content; the key GitLab 18.3 computes: commits)."""
    return k.for_version(NEW).key, k.for_version(OLD).key


@pytest.mark.parametrize(("files", "prefix"), CASES)
def test_both_algorithms_match_git_at_every_commit(
    history: tuple[Path, list[str]], files: list[str], prefix: str
) -> None:
    repo, shas = history
    g = GitRepo(repo)
    for sha in shas:
        k = gitlab_key(files, g.provider(sha), prefix=None if prefix.startswith("0_") else prefix, index=0, rev=sha)
        content, commits = _expected(repo, sha, files, prefix)
        assert _keys(k) == (content, commits), (sha, files)


def test_missing_everywhere_gives_default_in_words(history: tuple[Path, list[str]]) -> None:
    repo, shas = history
    k = gitlab_key([".cache-key"], GitRepo(repo).provider(shas[-1]), prefix="deps", rev=shas[-1])
    assert _keys(k) == ("deps-default", "deps-default")
    assert f"no listed file exists at {shas[-1][:12]}" in k.for_version(NEW).reason


def test_deleted_file_still_counts_for_commits_algorithm(history: tuple[Path, list[str]]) -> None:
    repo, shas = history
    k = gitlab_key(["go.sum"], GitRepo(repo).provider(shas[-1]), prefix="deps", rev=shas[-1])
    assert k.content.is_default
    assert k.commits.digest == hashlib.sha1(shas[-1].encode()).hexdigest()
    assert "not a file at this commit but still counts by its last commit" in k.for_version(OLD).reason


def test_globs_expand_against_the_tree_at_rev(history: tuple[Path, list[str]]) -> None:
    repo, shas = history
    g = GitRepo(repo)
    entries = ["**/go.mod", "**/*.lock"]
    k = gitlab_key(entries, g.provider(shas[1]), prefix="deps", rev=shas[1])
    matched = ["tools/go.mod", "a/b/c/deep.lock"]  # '**/go.mod' needs a '/': not the root go.mod
    assert sorted(p for p, _ in k.content.ids) == sorted(matched)
    assert _keys(k) == _expected(repo, shas[1], matched, "deps", entries)
    assert [p for p, _ in k.commits.ids] == entries  # one last-commit id per entry, as git's pathspec
    # `*` does not cross a slash: only the top-level go.mod at the first commit.
    k1 = gitlab_key(["go.*"], g.provider(shas[0]), prefix="p", rev=shas[0])
    assert [p for p, _ in k1.content.ids] == ["go.mod", "go.sum"]
    assert _keys(k1) == _expected(repo, shas[0], ["go.mod", "go.sum"], "p", ["go.*"])


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
    assert main(["key", "--gitlab", "--json", "--gitlab-version", "18.6"]) == 1  # the broken entry: default
    data = json.loads(capsys.readouterr().out)
    assert data["sha"] == sha and data["gitlab_version"] == "18.6.0"
    assert data["gitlab_version_source"] == "--gitlab-version"
    by_job = {c["jobs"][0]: c for c in data["caches"]}
    good = by_job["test"]
    assert good["index"] == 1
    content, _ = _expected(repo, sha, ["go.mod", "x/y.lock"], "1_go_**/*")  # the stems: go, **/*
    assert good["key"] == content and [v["key"] for v in good["variants"]] == [content]
    assert by_job["broken"]["key"] == "deps-default"
    assert "falls back to 'deps-default'" in by_job["broken"]["variants"][0]["reason"]
    assert "-protected" in data["suffixes"]
    assert {s["suffix"] for s in good["suffixes"]} == {"-protected", "-non_protected", "(none)"}
    # GitLab 18.3: one last-commit id per entry ('**/*.lock' is a git pathspec, not expanded)
    assert main(["key", "--gitlab", "--json", "--gitlab-version", "18.3.1"]) == 1
    old = {c["jobs"][0]: c for c in json.loads(capsys.readouterr().out)["caches"]}["test"]
    assert old["key"] == _expected(repo, sha, [], "1_go_**/*", ["go.mod", "**/*.lock"])[1]
    assert [i["path"] for i in old["commits"]["ids"]] == ["go.mod", "**/*.lock"]
    # No version known: every key that applies, with the versions that give it.
    assert main(["key", "--gitlab", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    good = {c["jobs"][0]: c for c in data["caches"]}["test"]
    assert data["gitlab_version"] is None and good["key"] is None
    assert [v["versions"] for v in good["variants"]] == [
        ["GitLab >= 18.4"],
        ["GitLab 16.0-18.3"],
        ["GitLab 15.7-15.11"],
        ["GitLab < 15.7"],
    ]
    assert main(["key", "--gitlab", "--gitlab-version", "eighteen"]) == 2
    assert "--gitlab-version" in capsys.readouterr().err


def test_cli_key_gitlab_uses_the_version_sync_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from cidash.store import Store

    repo = init_repo(tmp_path / "repo")
    commit(repo, "one", {".gitlab-ci.yml": CI.split("broken:", maxsplit=1)[0], "go.mod": "m\n"})
    db = tmp_path / "store.db"
    with Store.open(str(db)) as store:
        store.set_instance_version(42, "15.8.2", None, datetime(2026, 12, 1, tzinfo=UTC))
    monkeypatch.chdir(repo)
    assert main(["key", "--gitlab", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "GitLab 15.8.2 (recorded by cidash sync)" in out
    assert "key      1-" in out and "(GitLab 15.8.2; last-commit ids)" in out


def test_cli_key_gitlab_text_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(tmp_path / "repo")
    commit(repo, "one", {".gitlab-ci.yml": CI.split("broken:", maxsplit=1)[0], "go.mod": "m\n"})
    monkeypatch.chdir(repo)
    assert main(["key", "--gitlab"]) == 0
    out = capsys.readouterr().out
    assert "key      1_go_**/*-" in out and "(GitLab >= 18.4; blob ids)" in out and "Clear runner caches" in out
    assert "key      1-" in out and "(GitLab 15.7-15.11; last-commit ids)" in out
    assert "GitLab version unknown" in out
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
    assert entry["variants"][0]["key"] == _expected(repo, first, ["a.lock"], "old")[0]
    assert main(["key", "--gitlab", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["caches"][0]["prefix"] == "new"
    assert main(["key", "--gitlab", "--json", "--ci-file", ".gitlab-ci.yml"]) == 0
    assert json.loads(capsys.readouterr().out)["caches"][0]["prefix"] == "uncommitted"


def test_caches_tab_local_panel_uses_the_recorded_version(tmp_path: Path) -> None:
    from cidash.config import Config
    from cidash.tui.data import local_key_status

    repo = init_repo(tmp_path / "repo")
    ci = "test:\n  script: [x]\n  cache:\n    key:\n      files: [package.json, yarn.lock]\n"
    commit(repo, "one", {".gitlab-ci.yml": ci, "package.json": "{}\n", "yarn.lock": "y\n"})
    known = local_key_status(Config(), repo, "0_package_yarn-abc-protected", "main", "18.6.0")
    (line,) = [ln for ln in known if "GitLab key for HEAD" in ln]
    content, _ = _expected(repo, "HEAD", ["package.json", "yarn.lock"], "0_package_yarn")
    assert f"[bold]{content}[/]" in line and "version unknown" not in line
    unknown = local_key_status(Config(), repo, None, "main")
    assert any("GitLab version unknown" in ln for ln in unknown)
    assert any(ln.strip().startswith("[bold]0-") and "(GitLab 15.7-15.11)" in ln for ln in unknown)


HOSTILE_CI = """\
"evil\\e]0;pwned\\ajob":
  cache:
    key:
      files: ["*.mod", "go\\e[2J.sum"]
      prefix: "pre\\e]8;;http://x\\a"
    paths: [vendor/]
  script: [go build]
include:
  - local: "inc\\e]0;t\\a.yml"
"""


def test_cli_key_gitlab_text_shows_hostile_names_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Job names, key entries, prefixes and file names come from the CI file and the repository (anyone who can
    push writes them): the text output shows their escape sequences and line breaks, never sends them."""
    repo = init_repo(tmp_path / "repo")
    commit(repo, "one", {".gitlab-ci.yml": HOSTILE_CI, "go.mod": "m\n", "evil\x1b]0;pwned\x07.mod": "", "a\nb.mod": ""})
    monkeypatch.chdir(repo)
    main(["key", "--gitlab", "--gitlab-version", "18.6"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b]0;pwned\\x07job" in out and "evil\\x1b]0;pwned\\x07.mod" in out and "a\\nb.mod" in out


def test_cli_key_check_shows_hostile_names_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(tmp_path / "repo")
    lines = f"{'0' * 64}  go.mod\n{'1' * 64}  evil\x1b[2J.mod\n"
    commit(repo, "one", {"go.mod": "m\n", "evil\x1b[2J.mod": "x\n", ".cache-key": lines})
    monkeypatch.chdir(repo)
    assert main(["key", "--check", ".cache-key"]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2J.mod" in out

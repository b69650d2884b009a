"""cidash.gitrepo against real git repositories built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from cidash.errors import GitError
from cidash.gitrepo import GitRepo, find_root
from gitrepo_helpers import commit, git, init_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = init_repo(tmp_path / "repo")
    commit(r, "first", {"go.mod": "module x\n", "go.sum": "a\n", "dir/file one.txt": "1\n"})
    git(r, "mv", "go.sum", "renamed.sum")
    commit(r, "rename")
    (r / "dir" / "file one.txt").unlink()
    commit(r, "delete", {"docs/a/b.lock": "b\n"})
    return r


def test_blob_ids_match_git_rev_parse(repo: Path) -> None:
    g = GitRepo(find_root(repo / "docs"))
    assert g.root == repo.resolve()
    ids = g.blob_ids("HEAD", ["go.mod", "renamed.sum", "docs/a/b.lock", "go.sum", "dir/file one.txt", "docs"])
    assert ids["go.mod"] == git(repo, "rev-parse", "HEAD:go.mod")
    assert ids["renamed.sum"] == git(repo, "rev-parse", "HEAD:renamed.sum")
    assert ids["docs/a/b.lock"] == git(repo, "rev-parse", "HEAD:docs/a/b.lock")
    assert ids["go.sum"] is None  # renamed away
    assert ids["dir/file one.txt"] is None  # deleted
    assert ids["docs"] is None  # a directory is not a file
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    assert g.blob_ids(first, ["go.sum"])["go.sum"] == git(repo, "rev-parse", f"{first}:go.sum")


def test_last_commit_ids_match_git_log(repo: Path) -> None:
    g = GitRepo(repo)
    for path in ("go.mod", "renamed.sum", "go.sum", "dir/file one.txt", "docs/a/b.lock"):
        expected = git(repo, "log", "-1", "--format=%H", "HEAD", "--", path)
        assert g.last_commit_id("HEAD", path) == expected
    assert g.last_commit_id("HEAD", "never-existed") is None


def test_tree_files_and_is_tracked(repo: Path) -> None:
    g = GitRepo(repo)
    assert g.tree_files("HEAD") == sorted(git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines())
    assert g.is_tracked("./go.mod")
    (repo / "untracked.txt").write_text("x")
    assert not g.is_tracked("untracked.txt")


def test_not_a_checkout(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError, match="not inside a git checkout"):
        find_root(plain)


def test_unknown_revision(repo: Path) -> None:
    g = GitRepo(repo)
    with pytest.raises(GitError, match="unknown revision 'no-such-branch'"):
        g.resolve("no-such-branch")
    with pytest.raises(GitError, match="unknown revision"):
        g.resolve("--output=/tmp/x")


def test_empty_repository_has_no_head(tmp_path: Path) -> None:
    g = GitRepo(init_repo(tmp_path / "empty"))
    with pytest.raises(GitError, match="unknown revision 'HEAD'"):
        g.provider("HEAD")


def test_git_missing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo / "no-bin-here"))
    with pytest.raises(GitError, match="git is not installed"):
        find_root(repo)


def test_provider_answers_for_one_commit(repo: Path) -> None:
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    p = GitRepo(repo).provider(first)
    assert p.sha == first
    assert p.blob_id("go.sum") == git(repo, "rev-parse", f"{first}:go.sum")
    assert p.blob_id("renamed.sum") is None
    assert p.last_commit_id("go.sum") == first
    assert "dir/file one.txt" in (p.list_files() or [])


def test_helpers_build_a_real_repository(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "r")
    sha = commit(repo, "one", {"a.txt": "a\n"})
    assert len(sha) == 40
    assert git(repo, "rev-parse", "HEAD:a.txt") == git(repo, "hash-object", "a.txt")

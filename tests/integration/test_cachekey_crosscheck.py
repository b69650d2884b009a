"""Two independent implementations of GitLab's cache:key:files rules must agree: cidash's (``cidash.cachekey``,
asking git) and the simulator's (``cidash.sim.gitlab_keys``, over plain file contents). A wrong belief in either
shows up here as a difference, for the same committed files and the same GitLab version."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cidash.cachekey import GitLabVersion, MappingProvider, gitlab_key, match_seen_key
from cidash.gitrepo import GitRepo
from cidash.sim import gitlab_keys
from cidash.sim.content import CI_CACHE_KEY
from cidash.sim.scenario import Scenario, build_world
from gitrepo_helpers import commit, git, init_repo

VERSIONS = ("15.6.2", "15.9.0", "15.11.0", "16.0.0", "17.8.1", "18.3.0", "18.4.0", "18.6.1", "19.2.0")

HISTORY: list[dict[str, str | None]] = [
    {
        "go.mod": "module a\n",
        "go.sum": "s1\n",
        "package.json": "{}\n",
        "web/package.json": '{"w": 1}\n',
        "a/x/b": "b\n",
        "Dockerfile.ci": "FROM x\n",
        "?o.mod": "odd name\n",
    },
    {"go.sum": "s2\n", "web/app/yarn.lock": "y1\n", "web/app/package.json": '{"a": 1}\n'},
    {"a/x/b": "b2\n", "tools/go.mod": "module t\n"},
    {"Dockerfile.ci": None, "web/app/yarn.lock": "y2\n"},  # None: deleted
]

SPECS = [
    (["go.mod", "go.sum"], None, 0, False),
    (["package.json", "web/app/yarn.lock"], None, 1, False),
    ([".cache-key"], None, 0, False),
    (["**/package.json"], None, 0, False),
    (["*.json", "go.*"], "deps", 0, False),
    (["a/**/b", "**/go.mod"], None, 2, False),
    (["./go.mod"], None, 0, False),
    (["/go.sum", ""], None, 0, False),
    (["web", "Dockerfile.ci"], None, 0, False),
    (["web/"], "", 0, False),
    (["?o.mod"], "  ", 0, False),
    (["go.sum", "**/*.lock"], None, 0, True),
    (["web/app", "tools/*"], "x", 3, True),
    # git normalises a pathspec (GitLab < 18.4 and files_commits: found), GitLab 18.4+ files: looks up verbatim
    (["web//", "a//x/b"], None, 0, False),
    (["a/../go.sum", "./web/app/"], None, 1, True),
]


GIT_SPECS = [
    "web//",
    "web/",
    "web",
    "a//x/b",
    "./go.mod",
    "a/../go.sum",
    "../go.mod",
    "go.mod/",
    "go.mod//",
    "web/app/../package.json",
    ".",
    "./",
    "*//",
    "a//*",
    "w*/",
    "nothing",
    "web/./app/yarn.lock",
]


def test_the_simulators_pathspec_is_gits(repo: tuple[Path, list[tuple[str, dict[str, bytes]]]]) -> None:
    """What the simulator's LastCommitForPath stand-in matches is what ``git log -1 -- SPEC`` finds."""
    root, history = repo
    sha, tree = history[-1]
    for spec in GIT_SPECS:
        argv = ["git", "log", "-1", "--format=%H", sha, "--", spec]
        proc = subprocess.run(argv, cwd=root, capture_output=True, check=False)
        found = proc.returncode == 0 and proc.stdout.strip() != b""  # "../x" is refused: outside the repository
        assert any(gitlab_keys.pathspec_matches(spec, p) for p in tree) == found, spec


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[tuple[str, dict[str, bytes]]]]:
    """A real git history, and the same history as the simulator sees it: ``[(sha, {path: content})]``."""
    root = init_repo(tmp_path / "repo")
    tree: dict[str, bytes] = {}
    history: list[tuple[str, dict[str, bytes]]] = []
    for i, change in enumerate(HISTORY):
        for path, text in change.items():
            if text is None:
                git(root, "rm", "-q", path)
                tree.pop(path)
        written = {p: t for p, t in change.items() if t is not None}
        sha = commit(root, f"c{i}", written)
        tree.update({p: t.encode() for p, t in written.items()})
        history.append((sha, dict(tree)))
    return root, history


@pytest.mark.parametrize(("entries", "prefix", "index", "files_commits"), SPECS)
def test_simulator_and_cidash_agree_on_a_real_repository(
    repo: tuple[Path, list[tuple[str, dict[str, bytes]]]],
    entries: list[str],
    prefix: str | None,
    index: int,
    files_commits: bool,
) -> None:
    root, history = repo
    g = GitRepo(root)
    spec = gitlab_keys.KeyInput(tuple(entries), index=index, prefix=prefix, files_commits=files_commits)
    keys: set[str] = set()
    for n, (sha, tree) in enumerate(history):
        ours = gitlab_key(entries, g.provider(sha), prefix=prefix, index=index, files_commits=files_commits)
        last_commit = gitlab_keys.last_commit_finder(history[: n + 1])
        for version in VERSIONS:
            v = GitLabVersion.parse(version)
            if files_commits and v < GitLabVersion(18, 4):
                continue  # files_commits: exists on GitLab >= 18.4 only
            theirs = gitlab_keys.cache_key(spec, tree, gitlab_keys.parse_version(version), last_commit=last_commit)
            assert ours.for_version(v).key == theirs, (version, entries, sha)
            keys.add(theirs)
    assert len(keys) > 1  # the case distinguishes something (versions or commits)


def _blob(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


@pytest.mark.parametrize("version", ["15.9.0", "17.5.0", "18.6.0", "18.6.1"])
def test_every_simulated_job_key_is_the_key_cidash_computes(version: str) -> None:
    """The simulator's job logs, for a simulated GitLab of that version, against cidash's key for the files
    committed at each pipeline's SHA, and the suffix it printed is one cidash accepts."""
    world = build_world(Scenario(days=4, pipelines_per_day=5, migration_day=3, gitlab_version=version))
    project = world.main
    v = GitLabVersion.parse(version)
    checked = 0
    for job in project.jobs.values():
        if not job.cache_key or job.facts is None:
            continue
        pipeline = project.pipelines[job.pipeline_id]
        files = project.commits[pipeline.sha].files
        last = project.commits[pipeline.sha].last_change
        provider = MappingProvider({p: _blob(c) for p, c in files.items()}, dict(last), files=sorted(files))
        key = gitlab_key(CI_CACHE_KEY.entries, provider, prefix=CI_CACHE_KEY.prefix, index=CI_CACHE_KEY.index)
        expected = key.for_version(v).key
        restore = next(c for c in job.facts.cache if c.op == "restore" and not c.fallback)
        assert restore.key == job.cache_key
        protected = pipeline.ref in project.protected
        match = match_seen_key(job.cache_key, [expected], version=v, protected_ref=protected)
        assert match is not None and match.base == expected, (job.cache_key, expected)
        checked += 1
    assert checked > 20


TREE = {
    p: p.encode() * 2
    for p in (
        "go.mod",
        "go.sum",
        "package.json",
        "web/package.json",
        "web/app/package.json",
        "a/b",
        "a/x/b",
        ".cache-key",
        "x?.txt",
        "x[a].txt",
        "xa.txt",
    )
}
_PIECES = ["go", ".", "mod", "*", "**", "/", "a", "b", "x", "web", "package", "json", "?", "[a]", ".txt", "./", "-"]


@settings(max_examples=300, deadline=None)
@given(
    entries=st.lists(st.lists(st.sampled_from(_PIECES), max_size=5).map("".join), min_size=1, max_size=3),
    prefix=st.one_of(st.none(), st.sampled_from(["", " ", "deps", "a.b"])),
    index=st.integers(0, 3),
    version=st.sampled_from(VERSIONS),
)
# git pathspecs that once disagreed: a wildcard with a trailing slash matches nothing; repeated slashes are one
@example(entries=["*//"], prefix=None, index=0, version="15.6.2")
@example(entries=["a//*"], prefix=None, index=0, version="15.6.2")
def test_simulator_and_cidash_agree_on_generated_entries(
    entries: list[str], prefix: str | None, index: int, version: str
) -> None:
    """Content keys (>= 18.4) and every version's prefix rule, for arbitrary entries over a fixed tree; commit
    ids stand in as one fake id per matching git pathspec (the same answer for both)."""

    def last_commit(spec: str) -> str | None:
        hits = sorted(p for p in TREE if gitlab_keys.pathspec_matches(spec, p))
        return hashlib.sha1("|".join(hits).encode()).hexdigest() if hits else None

    provider = MappingProvider({p: _blob(c) for p, c in TREE.items()}, {}, files=sorted(TREE))
    fake = _PathspecProvider(provider, last_commit)
    ours = gitlab_key(entries, fake, prefix=prefix, index=index).for_version(GitLabVersion.parse(version)).key
    spec = gitlab_keys.KeyInput(tuple(entries), index=index, prefix=prefix)
    theirs = gitlab_keys.cache_key(spec, TREE, gitlab_keys.parse_version(version), last_commit=last_commit)
    assert ours == theirs


class _PathspecProvider:
    """Blob ids and the file list from a mapping; last commits from a callable (commits mode)."""

    def __init__(self, inner: MappingProvider, last_commit: Callable[[str], str | None]) -> None:
        self.inner = inner
        self.last = last_commit

    def blob_id(self, path: str) -> str | None:
        return self.inner.blob_id(path)

    def last_commit_id(self, path: str) -> str | None:
        return self.last(path)

    def list_files(self) -> Sequence[str] | None:
        return self.inner.list_files()


def test_the_simulator_never_imports_cidash_key_code() -> None:
    """Independence is the point of the cross-check: no simulator module may use cidash.cachekey."""
    import ast

    sim_dir = Path(gitlab_keys.__file__).parent
    for module in sim_dir.glob("*.py"):
        tree = ast.parse(module.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(name.startswith(("cidash.cachekey", "cidash.gitrepo")) for name in imported), module.name

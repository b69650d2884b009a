"""GitLab's cache:key:files rules as facts (gitlab-facts.md section 1, GitLab's own spec examples), by version.

Every expected key here is written out from the facts, not computed with cidash's helpers.
"""

from __future__ import annotations

import hashlib

import pytest

from cidash.cachekey import (
    CallableProvider,
    GitLabVersion,
    MappingProvider,
    expand_patterns,
    gitlab_key,
    maintainer_gets_protected,
    match_seen_key,
    pattern_matches,
    possible_suffixes,
    prefix_error,
    runner_rewrite_note,
    sanitize_like_runner,
)
from cidash.errors import InputError

V = GitLabVersion.parse
NEW = V("18.6")


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def provider(blobs: dict[str, str], commits: dict[str, str] | None = None) -> MappingProvider:
    return MappingProvider(blobs, commits or {}, files=sorted(blobs))


# -- the default prefix -------------------------------------------------------------------------------------------


def test_gitlabs_own_examples_for_the_default_prefix() -> None:
    """GitLab >= 16.0: '<index>_' + the stems; ``0_file1`` and ``1_file1_file2`` as in GitLab's pipeline spec."""
    p = provider({"file1.txt": "b1", "file2.txt": "b2"})
    assert gitlab_key(["file1.txt"], p, prefix=None, index=0, version=NEW).chosen.key == f"0_file1-{sha1('b1')}"  # type: ignore[union-attr]
    two = gitlab_key(["file1.txt", "file2.txt"], p, prefix=None, index=1, version=NEW).chosen
    assert two is not None and two.key == f"1_file1_file2-{sha1('b1-b2')}"


@pytest.mark.parametrize(
    ("files", "expected_prefix"),
    [
        (["package.json", "yarn.lock"], "0_package_yarn"),
        ([".cache-key"], "0_"),
        (["frontend/yarn.lock"], "0_frontend/yarn"),
        (["/go.mod"], "0_go"),  # leading '/' stripped before the stem is taken
        (["package-lock.json"], "0_package-lock"),
        (["project-gemfile.lock", ""], "0_project-gemfile_"),  # a blank entry still counts for the prefix
        (["a.b.c"], "0_a"),  # up to the first '.'
    ],
)
def test_stems(files: list[str], expected_prefix: str) -> None:
    k = gitlab_key(files, provider({}), prefix=None, index=0, version=NEW)
    assert k.chosen is not None and k.chosen.key == f"{expected_prefix}-default"


# The version table: [package.json, yarn.lock] at index 0, no prefix:, on each version.
BLOBS = {"package.json": "b-pkg", "yarn.lock": "b-yarn"}
COMMITS = {"package.json": "c-1", "yarn.lock": "c-2"}
CONTENT = sha1("b-pkg-b-yarn")
PER_ENTRY = sha1("c-1-c-2")


@pytest.mark.parametrize(
    ("version", "files_commits", "expected"),
    [
        ("15.6.9", False, PER_ENTRY),  # < 15.7: no prefix at all
        ("15.7.0", False, f"0-{PER_ENTRY}"),  # 15.7-15.10: the bare index
        ("15.10.3", False, f"0-{PER_ENTRY}"),
        ("15.11.0", False, f"0-{PER_ENTRY}"),  # 15.11: the stem prefix is behind a flag that is off
        ("16.0.0", False, f"0_package_yarn-{PER_ENTRY}"),  # >= 16.0: index + stems
        ("18.3.2", False, f"0_package_yarn-{PER_ENTRY}"),  # < 18.4: one last-commit id per entry
        ("18.4.0", False, f"0_package_yarn-{CONTENT}"),  # >= 18.4: blob ids
        ("19.5.0", False, f"0_package_yarn-{CONTENT}"),
        ("18.4.0", True, f"0-{PER_ENTRY}"),  # files_commits: the bare index, commit ids
        ("19.5.0", True, f"0-{PER_ENTRY}"),
    ],
)
def test_version_table(version: str, files_commits: bool, expected: str) -> None:
    p = provider(BLOBS, COMMITS)
    k = gitlab_key(["package.json", "yarn.lock"], p, prefix=None, index=0, files_commits=files_commits)
    assert k.for_version(V(version)).key == expected


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("deps", f"deps-{CONTENT}"), ("", CONTENT), ("   ", CONTENT), ("$CI_JOB_NAME", f"$CI_JOB_NAME-{CONTENT}")],
)
def test_a_given_prefix_always_wins(prefix: str, expected: str) -> None:
    k = gitlab_key(["package.json", "yarn.lock"], provider(BLOBS, COMMITS), prefix=prefix, index=3)
    for version in ("15.0", "15.8", "17.0", "18.4", "19.0"):
        got = k.for_version(V(version)).key
        assert got == (expected if V(version) >= V("18.4") else expected.replace(CONTENT, PER_ENTRY))


def test_unknown_version_lists_each_variant_with_its_versions() -> None:
    k = gitlab_key(["package.json", "yarn.lock"], provider(BLOBS, COMMITS), prefix=None, index=0)
    assert k.chosen is None
    assert [(v.key, v.versions) for v in k.variants()] == [
        (f"0_package_yarn-{CONTENT}", ("GitLab >= 18.4",)),
        (f"0_package_yarn-{PER_ENTRY}", ("GitLab 16.0-18.3",)),
        (f"0-{PER_ENTRY}", ("GitLab 15.7-15.11",)),
        (PER_ENTRY, ("GitLab < 15.7",)),
    ]
    given = gitlab_key(["package.json"], provider(BLOBS, COMMITS), prefix="deps")
    assert [v.versions for v in given.variants()] == [
        ("GitLab >= 18.4",),
        ("GitLab 16.0-18.3", "GitLab 15.7-15.11", "GitLab < 15.7"),
    ]
    fc = gitlab_key(["package.json"], provider(BLOBS, COMMITS), prefix=None, files_commits=True)
    assert [v.key for v in fc.variants()] == [f"0-{sha1('c-1')}"]  # files_commits: exists since 18.4 only


# -- paths and patterns -------------------------------------------------------------------------------------------


def test_relative_paths_fall_back_to_default() -> None:
    """GitLab's spec: files: ['./VERSION'], prefix 'relative' -> 'relative-default' ("not supported")."""
    p = provider({"VERSION": "b-v"}, {"VERSION": "c-v"})
    k = gitlab_key(["./VERSION"], p, prefix="relative")
    assert k.for_version(V("18.6")).key == "relative-default"
    assert k.for_version(V("17.0")).key == "relative-default"
    assert "looked up verbatim" in k.for_version(NEW).reason
    mixed = gitlab_key(["Gemfile.zip", "./VERSION"], provider({"Gemfile.zip": "b-g", "VERSION": "b-v"}), prefix="p")
    assert mixed.for_version(NEW).key == f"p-{sha1('b-g')}"


def test_a_file_written_by_a_job_gives_the_stem_default_key() -> None:
    k = gitlab_key([".cache-key"], provider({"go.mod": "b"}), prefix=None)
    assert k.for_version(NEW).key == "0_-default"
    assert k.for_version(V("15.8")).key == "0-default"
    assert k.for_version(V("15.0")).key == "default"
    assert k.is_default


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("**/package.json", "package.json", False),  # '**/x' needs a '/': not the root file
        ("**/package.json", "a/package.json", True),
        ("**/package.json", "a/b/package.json", True),
        ("a/**/b", "a/b", False),  # needs at least one directory
        ("a/**/b", "a/x/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("go.*", "go.mod", True),
        ("go.*", "sub/go.mod", False),  # '*' stays inside one directory
        ("*.lock", "a/b.lock", False),
        ("x*[ab].txt", "xy[ab].txt", True),  # '[...]' is literal
        ("x*[ab].txt", "xya.txt", False),
        ("x*?.txt", "xy?.txt", True),  # '?' is literal
        ("x*?.txt", "xyz.txt", False),
        ("?.txt", "a.txt", False),  # no '*': not a pattern at all, looked up verbatim
        ("?.txt", "?.txt", True),
    ],
)
def test_patterns(pattern: str, path: str, expected: bool) -> None:
    assert pattern_matches(pattern, path) is expected


def test_patterns_expand_in_content_mode_only() -> None:
    files = ["package.json", "web/package.json", "web/app/package.json", "go.mod"]
    assert expand_patterns(["**/package.json", "go.mod", "./go.mod"], files) == {
        "**/package.json": ["web/app/package.json", "web/package.json"],
        "go.mod": ["go.mod"],
        "./go.mod": [],
    }
    blobs = {f: f"b{i}" for i, f in enumerate(files)}
    k = gitlab_key(["**/package.json"], provider(blobs), prefix="p")
    assert k.for_version(NEW).key == f"p-{sha1('b1-b2')}"  # not b0: the root package.json


def test_commits_mode_gives_one_id_per_entry() -> None:
    """Before 18.4 (and files_commits:) each entry is one git pathspec: never expanded, a directory gives its
    last commit, so two matched files still count once."""
    asked: list[str] = []

    def last_commit(spec: str) -> str | None:
        asked.append(spec)
        return {"**/*.lock": "c-lock", "vendor": "c-dir"}.get(spec)

    blobs = {"a/x.lock": "b1", "b/y.lock": "b2"}
    p = CallableProvider(blobs.get, last_commit, lambda: sorted(blobs))
    k = gitlab_key(["**/*.lock", "vendor"], p, prefix="p")
    old = k.for_version(V("18.3"))
    assert old.key == f"p-{sha1('c-dir-c-lock')}" and old.algorithm == "commits"
    assert asked == ["**/*.lock", "vendor"]
    assert k.commits.ids == (("**/*.lock", "c-lock"), ("vendor", "c-dir"))
    assert k.for_version(NEW).key == f"p-{sha1('b1-b2')}"  # content: the directory gives nothing


def test_blank_and_duplicate_entries_are_dropped_for_the_lookup() -> None:
    k = gitlab_key(["go.mod", "", "  ", "go.mod", "/go.mod"], provider({"go.mod": "b"}), prefix="p")
    assert k.for_version(NEW).key == f"p-{sha1('b')}"
    assert k.content.ids == (("go.mod", "b"),)


# -- prefixes GitLab rejects --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "bad"), [("a/b", True), ("a%2Fb", True), (".", True), ("..", True), ("a.b", False), ("deps", False)]
)
def test_prefix_errors(prefix: str, bad: bool) -> None:
    assert (prefix_error(prefix) is not None) is bad


# -- suffixes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [("18.4.4", False), ("18.4.5", True), ("18.5.2", False), ("18.5.3", True), ("18.6.0", False), ("18.6.1", True)],
)
def test_maintainer_protected_releases(version: str, expected: bool) -> None:
    assert maintainer_gets_protected(V(version)) is expected
    assert maintainer_gets_protected(None) is None


def test_seen_keys_and_the_suffixes_that_explain_them() -> None:
    base = "0_-" + "a" * 40
    hit = match_seen_key(base + "-2-protected", [base])
    assert hit is not None and hit.clear_index == 2 and hit.protection == "protected"
    assert "Clear runner caches" in hit.reason
    off = match_seen_key(base, [base])
    assert off is not None and "separate caches" in off.reason
    # cache:unprotect: true always gives -non_protected
    assert match_seen_key(base + "-protected", [base], unprotect=True) is None
    assert match_seen_key(base + "-non_protected", [base], unprotect=True) is not None
    # An unprotected ref gets -protected only for a Maintainer on the security releases
    assert match_seen_key(base + "-protected", [base], version=V("18.6.0"), protected_ref=False) is None
    maint = match_seen_key(base + "-protected", [base], version=V("18.6.1"), protected_ref=False)
    assert maint is not None and "Maintainer" in maint.reason
    unknown = match_seen_key(base + "-protected", [base], protected_ref=False)
    assert unknown is not None and "18.4.5/18.5.3/18.6.1" in unknown.reason
    assert match_seen_key(base + "-non_protected", [base], protected_ref=True) is None
    assert match_seen_key(base + "x-protected", [base]) is None
    assert [s for s, _ in possible_suffixes(None, unprotect=True)] == ["-non_protected", ""]


def test_runner_rewriting() -> None:
    assert sanitize_like_runner("deps%2Fx\\y/./z ") == "deps/x/y/z"
    assert sanitize_like_runner("0_frontend/yarn-abc") == "0_frontend/yarn-abc"
    note = runner_rewrite_note("0_frontend/yarn-abc")
    assert note is not None and "18.2.0 refuses" in note
    rewritten = runner_rewrite_note("a%2Fb-1")
    assert rewritten is not None and 'sanitized to "a/b-1"' in rewritten
    assert runner_rewrite_note("0_-abc") is None
    m = match_seen_key("a/b-1-protected", ["a%2Fb-1"])
    assert m is not None and m.sanitized and "18.2.1" in m.reason


def test_version_parsing() -> None:
    assert V("18.6.0-ee") == GitLabVersion(18, 6, 0)
    assert V("v18.6") == GitLabVersion(18, 6, 0)
    assert str(V("17.11.2")) == "17.11.2"
    assert GitLabVersion.maybe("nope") is None and GitLabVersion.maybe(None) is None
    with pytest.raises(InputError):
        V("eighteen")

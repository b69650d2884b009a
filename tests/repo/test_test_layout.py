"""The test suite's own layout (docs/development.md, "Tests"): every test file sits in one group, test module
names are unique across the groups (pytest imports them by bare name), and every snapshot directory belongs to a
test file beside it (pytest-textual-snapshot looks for ``__snapshots__/<test file>/`` next to the file)."""

from __future__ import annotations

import tomllib
from collections import Counter

from paths import REPO_ROOT, TESTS

GROUPS = ("unit", "integration", "tui", "repo")


def test_every_test_file_is_in_a_group() -> None:
    stray = sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("test_*.py") if p.parent.name not in GROUPS)
    assert stray == [], f"move these into one of tests/{{{','.join(GROUPS)}}}/ (see docs/development.md)"
    for group in GROUPS:
        assert sorted((TESTS / group).glob("test_*.py")), group
        assert not (TESTS / group / "__init__.py").exists(), "groups are plain directories (imports by bare name)"


def test_test_module_names_are_unique_across_groups() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [name for name, n in names.items() if n > 1] == []


def test_every_snapshot_directory_has_its_test_file() -> None:
    dirs = sorted(p for p in TESTS.rglob("__snapshots__/*") if p.is_dir())
    assert dirs, "the dashboard's snapshots are gone"
    orphans = [str(d.relative_to(TESTS)) for d in dirs if not (d.parent.parent / f"{d.name}.py").is_file()]
    assert orphans == [], "a snapshot directory must sit beside its test file (move it with the file)"


def test_pytest_finds_every_group_and_the_shared_helpers() -> None:
    options = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["testpaths"] == ["tests"]  # a file added outside the groups still runs (and fails the test above)
    assert options["pythonpath"] == ["tests"]  # conftest, paths, faultproxy, pgserver, ... from every group

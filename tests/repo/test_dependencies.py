"""What pyproject.toml declares against what requirements.lock installs (and `make test` tests): every declared
range admits the locked version, and the one dependency whose internals the code touches (Textual: NavTable's
header mend) is capped below its next major, so an install never pairs cidash with an untested Textual major."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from paths import REPO_ROOT


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in [*project["dependencies"], *extras]]


def _locked() -> dict[str, Version]:
    text = (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8")
    return {m[1].lower(): Version(m[2]) for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.MULTILINE)}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_range_admits_the_locked_version() -> None:
    locked = {_norm(k): v for k, v in _locked().items()}
    checked = 0
    for req in _declared():
        version = locked.get(_norm(req.name))
        assert version is not None, f"{req.name} is declared but not in requirements.lock"
        assert req.specifier.contains(version, prereleases=True), f"{req} does not admit the locked {version}"
        checked += 1
    assert checked >= 10


def test_textual_is_capped_below_the_next_major_of_the_locked_one() -> None:
    (textual,) = [r for r in _declared() if _norm(r.name) == "textual"]
    locked = _locked()["textual"]
    next_major = Version(f"{locked.major + 1}")
    assert not textual.specifier.contains(next_major), f"{textual} admits Textual {next_major}, never tested"
    assert textual.specifier.contains(locked)
    # the floor is the tested major too: an older Textual lacks what the dashboard uses
    assert not textual.specifier.contains(Version(f"{locked.major - 1}.99")), textual

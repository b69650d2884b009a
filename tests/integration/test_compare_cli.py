"""`cidash compare` on a synced store: a SPEC that selects nothing is said so, with the reason when a short hex
word after ``image:`` was read as a tag."""

from __future__ import annotations

import pytest

from cidash.cli import main
from cidash.commands.compare import empty_spec_hint
from metrics_factories import SyncedWorld, synced_world

__all__ = ["synced_world"]


def test_an_empty_side_is_named_with_the_digest_hint(
    synced_world: SyncedWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["compare", "--db", synced_world.db, "--config", synced_world.config_file]
    code = main([*args, "--baseline", "image:f6e9", "--candidate", "ref:main"])
    out, err = capsys.readouterr()
    assert code in (0, 1) and "(0 pipelines)" in out
    assert "warning: the baseline SPEC 'image:f6e9' matches no pipeline" in err
    assert "image:sha256: and 6+ hex digits" in err
    assert "candidate SPEC" not in err  # ref:main selects pipelines


def test_no_warning_when_both_sides_select_pipelines(
    synced_world: SyncedWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["compare", "--db", synced_world.db, "--config", synced_world.config_file]
    main([*args, "--baseline", "ref:main", "--candidate", "ref:main"])
    assert "warning" not in capsys.readouterr().err


def test_the_hint_only_for_hex_looking_tags() -> None:
    assert "digest prefix" not in empty_spec_hint("baseline", "image:alpine-3")
    assert "digest prefix" in empty_spec_hint("candidate", "2026-11-12..,image:sha256:ab12")
    assert "\x1b" not in empty_spec_hint("baseline", "image:\x1b[31mred")

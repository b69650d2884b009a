"""Machine-readable outputs print measured numbers, not the binary noise of float arithmetic (issue 16: float
noise in JSON/CSV such as ``27.05900001525879``): every float a JSON, CSV or OpenMetrics output carries has at
most :data:`cidash.formatting.SIGNIFICANT_DIGITS` significant digits, and durations taken from a log's clock
have at most microseconds."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from cidash.cli import main
from cidash.formatting import SIGNIFICANT_DIGITS, tidy, tidy_number
from cidash.logparse import parse_bytes
from metrics_factories import SyncedWorld, synced_world  # noqa: F401 (the session fixture)


def floats(doc: Any) -> list[float]:
    if isinstance(doc, float):
        return [doc]
    if isinstance(doc, dict):
        return [x for v in doc.values() for x in floats(v)]
    if isinstance(doc, list):
        return [x for v in doc for x in floats(v)]
    return []


def is_tidy(x: float) -> bool:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}") == x


def test_tidy_keeps_what_was_measured_and_drops_the_noise() -> None:
    assert tidy_number(873.3999999999999) == 873.4
    assert tidy_number(26.89300012588501) == 26.8930001259  # 12 digits: the rest is noise, not a measure
    assert tidy_number(0.1 + 0.2) == 0.3
    assert tidy_number(1793177351.486) == 1793177351.49  # 12 significant digits, also for big numbers
    assert tidy({"a": [1, 2.0000000000001, (0.30000000000000004,)], "b": "x", "c": None, "d": True}) == {
        "a": [1, 2.0, [0.3]],
        "b": "x",
        "c": None,
        "d": True,
    }
    nan = tidy_number(float("nan"))
    assert nan != nan and tidy_number(float("inf")) == float("inf")


def test_a_duration_from_the_log_clock_is_microseconds() -> None:
    """Per-line timestamps 19:38:17.267790 -> 19:38:24.851250 are 7.58346 s apart; as ~1.8e9 s doubles their
    difference is 7.583459854125977, which is noise, not a measure."""
    log = (
        b"2026-09-30T19:38:17.267790Z 00O section_start:1790797097:prepare_executor\r\x1b[0KPreparing\n"
        b"2026-09-30T19:38:24.851250Z 00O section_end:1790797104:prepare_executor\r\x1b[0K\n"
        b"2026-09-30T19:38:24.851250Z 00O section_start:1790797104:step_script\r\x1b[0KExecuting\n"
    )
    facts = parse_bytes(log)
    assert 1790797104.85125 - 1790797097.26779 != 7.58346  # the noise this test is about
    assert facts.sections[0].duration == 7.58346
    assert facts.startup_seconds == 7.58346


@pytest.fixture(scope="module")
def outputs(synced_world: SyncedWorld, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811
    base = tmp_path_factory.mktemp("outputs")
    common = ["--db", synced_world.db, "--config", synced_world.config_file, "--now", synced_world.now.isoformat()]
    out: dict[str, str] = {}
    for name, argv in {
        "export.json": ["export", "--format", "json", "--since", "all"],
        "export.csv": ["export", "--format", "csv", "--since", "all"],
        "export.om": ["export", "--format", "openmetrics", "--since", "all"],
    }.items():
        path: Path = base / name
        assert main([*argv, "--output", str(path), *common]) == 0, name
        out[name] = path.read_text(encoding="utf-8")
    return out


@pytest.fixture
def check_json(synced_world: SyncedWorld, capsys: pytest.CaptureFixture[str]) -> str:  # noqa: F811
    common = ["--db", synced_world.db, "--config", synced_world.config_file, "--now", synced_world.now.isoformat()]
    assert main(["check", "--format", "json", *common]) in (0, 1)
    return capsys.readouterr().out


def test_json_outputs_carry_no_float_noise(outputs: dict[str, str], check_json: str) -> None:
    for name, text in (("export.json", outputs["export.json"]), ("check.json", check_json)):
        numbers = floats(json.loads(text))
        assert len(numbers) > 10, name  # the documents are not empty
        assert [x for x in numbers if not is_tidy(x)] == [], name
    doc = json.loads(outputs["export.json"])
    first_script = doc["metrics"]["time_to_first_script"]
    assert first_script["n"] > 0
    for stat in ("median", "p90", "min", "max"):  # order statistics of log-clock durations: microseconds at most
        assert round(first_script[stat], 6) == first_script[stat], stat


def test_csv_and_openmetrics_carry_no_float_noise(outputs: dict[str, str]) -> None:
    rows = list(csv.DictReader(io.StringIO(outputs["export.csv"])))
    values = [float(r["value"]) for r in rows if r["value"] not in ("", "True", "False")]
    assert len(values) > 10 and all(is_tidy(v) for v in values)
    samples = [line.rsplit(" ", 1)[-1] for line in outputs["export.om"].splitlines() if line and line[0] != "#"]
    numbers = [float(s) for s in samples if re.fullmatch(r"-?[0-9.e+-]+", s)]
    assert len(numbers) > 10 and all(is_tidy(v) for v in numbers)

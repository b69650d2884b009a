"""One vocabulary (issue 14): GitLab's statuses, the mutating-request type and the exit codes are defined once,
in cidash.models / cidash.errors, and every layer uses those objects."""

from __future__ import annotations

from pathlib import Path

from cidash import errors, models


def test_status_sets_are_defined_once() -> None:
    from cidash import metrics, sync
    from cidash.actions import base

    assert sync.FINISHED_JOB_STATUSES is models.FINISHED_STATUSES
    assert sync.ACTIVE_JOB_STATUSES is models.ACTIVE_STATUSES is sync.ACTIVE_PIPELINE_STATUSES
    assert metrics.FINISHED_STATUSES is models.DECIDED_STATUSES
    assert metrics.NOT_RUN_STATUSES is models.NOT_RUN_STATUSES
    assert base.ACTIVE_STATUSES is models.ACTIVE_STATUSES
    assert base.STARTED_STATUSES is models.STARTED_STATUSES
    assert base.RETRYABLE_STATUSES is models.RETRYABLE_STATUSES
    assert models.DECIDED_STATUSES < models.FINISHED_STATUSES < models.STARTED_STATUSES
    assert not set(models.ACTIVE_STATUSES) & models.FINISHED_STATUSES


def test_no_status_set_literal_outside_models() -> None:
    root = Path(models.__file__).parent
    for path in root.rglob("*.py"):
        if path.name == "models.py" or "sim" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        assert 'frozenset({"success", "failed"' not in text, path
        assert '("success", "failed", "canceled")' not in text, path


def test_requests_and_their_errors_live_in_the_vocabulary() -> None:
    from cidash.actions import base
    from cidash.remote import mutations

    assert base.HttpCall is models.HttpCall is mutations.HttpCall
    assert base.ActionHttpError is errors.ActionHttpError is mutations.ActionHttpError
    assert models.API_PREFIX == "/api/v4" == base.API_PREFIX
    call = models.HttpCall(
        "POST", "/api/v4/projects/1/pipeline", {"ref": "main", "variables": [{"key": "K", "value": "v"}]}
    )
    assert '"value": "***"' in str(call.redacted()) and '"v"' not in str(call.redacted())
    err = errors.ActionHttpError("no", status=403, call=call, server_message="403 Forbidden")
    assert err.status == 403 and err.call is call


def test_exit_codes(tmp_path: Path) -> None:
    assert [int(c) for c in models.ExitCode] == [0, 1, 2, 130]
    from cidash.cli import main

    assert main(["check", "--criterion", "nope", "--db", str(tmp_path / "none.db")]) == models.ExitCode.USAGE

"""The simulated scenario: the migration story's ground truth, determinism, and log round trip."""

from __future__ import annotations

import hashlib
import statistics

import pytest

from cidash.logparse import parse_bytes
from cidash.sim import Scenario, build_world
from cidash.sim.content import CACHE_KEY_FILE, CRITICAL_FILES
from cidash.sim.tracegen import render_trace
from cidash.sim.world import World, git_blob_id

MB = 1_000_000


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(Scenario())


def test_default_scenario_shape(world: World) -> None:
    truth = world.truth
    assert truth is not None
    assert 340 <= truth.pipelines <= 400
    assert 7 <= truth.jobs / truth.pipelines <= 9
    refs = {p.ref for p in world.main.pipelines.values()}
    assert {"main", "feature/legacy-ci"} <= refs and any(
        r.startswith("feature/") and r != "feature/legacy-ci" for r in refs
    )
    assert {"platform/app", "platform/docs"} == {p.path for p in world.projects.values()}


def test_truth_tells_the_migration_story(world: World) -> None:
    truth = world.truth
    assert truth is not None
    old = truth.image_tags[truth.baseline_image_tag]
    new = truth.image_tags[truth.candidate_image_tag]
    assert old.flavor == "debian" and 806 * MB < old.total_size < 808 * MB
    assert new.flavor == "alpine" and new.total_size <= 215 * MB
    assert 0.35 <= truth.startup_improvement <= 0.45
    ran, ok = truth.image_builds_baseline
    assert ran > 50 and 0.90 <= ok / ran <= 0.98  # ~5 % push-race failures
    ran, ok = truth.image_builds_candidate
    assert ran >= 5 and ok == ran
    assert truth.overlapping_writers_baseline > 0 and truth.overlapping_writers_candidate == 0
    mig = truth.migration_at.timestamp()
    main = world.main
    for job_id in truth.stale_cache_jobs | truth.default_key_jobs:
        pipeline = main.pipelines[main.jobs[job_id].pipeline_id]
        assert pipeline.created_at < mig or pipeline.ref != "main"  # only the old design goes stale
    assert any(main.pipelines[main.jobs[j].pipeline_id].created_at < mig for j in truth.stale_cache_jobs)
    assert all(reason == "script_failure" for reason in truth.failed_jobs.values())


def test_startup_medians_recomputed_from_facts(world: World) -> None:
    truth = world.truth
    assert truth is not None
    mig = truth.migration_at.timestamp()
    before, after = [], []
    for job in world.main.jobs.values():
        pipeline = world.main.pipelines[job.pipeline_id]
        if job.facts is None or job.kind == "image" or pipeline.ref != "main":
            continue
        (after if pipeline.created_at >= mig else before).append(job.facts.startup_seconds)
    assert statistics.median(before) == pytest.approx(truth.baseline_startup_median)
    assert statistics.median(after) == pytest.approx(truth.candidate_startup_median)


def test_legacy_branch_keeps_the_old_design(world: World) -> None:
    truth = world.truth
    assert truth is not None
    mig = truth.migration_at.timestamp()
    late = [p for p in world.main.pipelines.values() if p.ref == "feature/legacy-ci" and p.created_at > mig]
    assert late and all(p.design == "legacy" for p in late)
    for p in late:
        setup = next(world.main.jobs[j] for j in p.job_ids if world.main.jobs[j].name == "setup")
        assert setup.cache_key == "0_-default-non_protected"  # GitLab >= 16.0: "0_" + the stem of .cache-key
        assert setup.image_tag is not None and setup.image_tag.startswith("debian-")


def test_manual_image_build_unless_dockerfile_changed(world: World) -> None:
    main = world.main
    for p in main.pipelines.values():
        build = next(main.jobs[j] for j in p.job_ids if main.jobs[j].name == "build-ci-image")
        commit = main.commits[p.sha]
        changed = "Dockerfile.ci" in commit.changed and p.source == "push"
        if p.design == "migrated" and not changed:
            assert build.manual
        if p.design == "legacy":
            assert not build.manual


def test_cache_keys_follow_the_gitlab_formula(world: World) -> None:
    main = world.main
    for job in main.jobs.values():
        if not job.cache_key:
            continue
        pipeline = main.pipelines[job.pipeline_id]
        commit = main.commits[pipeline.sha]
        suffix = "protected" if pipeline.ref == "main" else "non_protected"
        if CACHE_KEY_FILE in commit.files:
            digest = hashlib.sha1(git_blob_id(commit.files[CACHE_KEY_FILE]).encode()).hexdigest()
        else:
            digest = "default"
        assert job.cache_key == f"0_-{digest}-{suffix}"  # no prefix on GitLab 18.6: "0_" + the stem of .cache-key


def test_committed_cache_key_is_sha256sum_of_critical_files(world: World) -> None:
    commit = world.main.commits[world.main.heads["main"]]
    expected = "".join(f"{hashlib.sha256(commit.files[p]).hexdigest()}  {p}\n" for p in CRITICAL_FILES)
    assert commit.files[CACHE_KEY_FILE].decode() == expected
    for path, sha in commit.last_change.items():
        changer = world.main.commits[sha]
        assert path in changer.changed


def test_every_log_parses_back_to_the_facts_the_world_put_in(world: World) -> None:
    main = world.main
    now = world.now()
    checked = 0
    kinds: set[tuple[str, str, bool]] = set()
    for job in main.jobs.values():
        facts = job.facts
        if facts is None:
            continue
        parsed = parse_bytes(render_trace(job, main.path, main.id, now))
        assert parsed.runner_version == facts.runner_version
        assert parsed.executor == facts.executor
        assert parsed.truncated == facts.truncated == (job.id in world.truth.truncated_jobs)  # type: ignore[union-attr]
        names = [s.name for s in facts.sections]
        if facts.truncated:  # the log ends inside step_script, which never closes
            names = names[: names.index("step_script") + 1]
            assert parsed.sections[-1].end is None
        assert [s.name for s in parsed.sections] == names
        startup = facts.startup_seconds if facts.timestamps else facts.marker_startup_seconds
        assert parsed.startup_seconds == pytest.approx(startup, abs=2e-3)
        assert parsed.image is not None
        assert parsed.image.name == facts.image
        assert parsed.image.pulled == facts.pulled
        assert parsed.image.digest is not None and facts.image_digest.endswith(parsed.image.digest)
        assert [(e.op, e.key, e.outcome) for e in parsed.cache] == [(e.op, e.key, e.outcome) for e in facts.cache]
        assert [e.detail == "fallback" for e in parsed.cache] == [e.fallback for e in facts.cache]
        kinds.add((facts.runner_version, facts.executor, facts.timestamps))
        checked += 1
    assert checked > 2000
    # the fleet is a mix, as real ones are: old runners without timestamps, docker+machine, docker-autoscaler
    assert {v.split(".")[0] for v, _, _ in kinds} >= {"14", "16", "17", "18"}
    assert {e for _, e, _ in kinds} >= {"docker", "docker+machine", "docker-autoscaler"}
    assert {t for _, _, t in kinds} == {True, False}
    assert world.truth is not None and world.truth.truncated_jobs


def test_running_job_log_is_partial() -> None:
    world = build_world(Scenario(days=2, pipelines_per_day=2, migration_day=2))
    main = world.main
    job = next(j for j in main.jobs.values() if j.facts and j.started_at and j.finished_at)
    assert job.started_at is not None and job.finished_at is not None
    middle = (job.started_at + job.finished_at) / 2
    partial = render_trace(job, main.path, main.id, middle)
    full = render_trace(job, main.path, main.id, job.finished_at + 1)
    assert full.startswith(partial) and len(partial) < len(full)
    assert b"Job succeeded" not in partial or job.final_status != "success"


def test_same_seed_same_world_other_seed_other_world() -> None:
    small = Scenario(days=5, pipelines_per_day=4, migration_day=3)

    def fingerprint(w: World) -> list[object]:
        m = w.main
        return [
            (
                j.id,
                j.name,
                j.started_at,
                j.finished_at,
                j.final_status,
                j.cache_key,
                render_trace(j, m.path, m.id, 1e12),
            )
            for j in m.jobs.values()
        ]

    assert fingerprint(build_world(small)) == fingerprint(build_world(small))
    assert fingerprint(build_world(small)) != fingerprint(
        build_world(Scenario(days=5, pipelines_per_day=4, migration_day=3, seed=1))
    )


def test_total_pipelines_override() -> None:
    world = build_world(Scenario(total_pipelines=200, days=10, migration_day=6))
    assert world.truth is not None
    assert 200 <= world.truth.pipelines <= 201  # + the migration commit's own pipeline


def test_logs_print_what_their_runner_prints(world: World) -> None:
    main = world.main
    seen = {"fatal": 0, "warning": 0, "labelled": 0, "unlabelled": 0}
    for job in main.jobs.values():
        facts = job.facts
        if facts is None:
            continue
        log = render_trace(job, main.path, main.id, world.now())
        major = int(facts.runner_version.split(".")[0])
        assert log.startswith(b"20") == facts.timestamps  # a per-line timestamp prefix, or none
        assert f'Preparing the "{facts.executor}" executor'.encode() in log
        if b"file does not exist" in log:
            fatal = b"FATAL: file does not exist" in log
            assert fatal == (major <= 14)
            seen["fatal" if fatal else "warning"] += 1
        if any(e.fallback for e in facts.cache):
            labelled = b" (fallback)..." in log
            assert labelled == facts.step_runner
            seen["labelled" if labelled else "unlabelled"] += 1
        else:
            assert b"(fallback)" not in log
    assert all(seen.values()), seen

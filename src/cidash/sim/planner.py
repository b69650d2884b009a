"""The job planner: times, outcomes, cache keys and trace facts of every job, for the generators and for the
API's mutations (create pipeline, retry, play) at run time."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from cidash.sim import content, gitlab_keys
from cidash.sim.content import CRITICAL_FILES, TOOLS, RepoState
from cidash.sim.model import (
    DOCKER_IMAGE,
    DOCKER_IMAGE_SIZE,
    MAINTAINER_USER,
    MB,
    OUTPUT_LIMIT,
    STAGES,
    Scenario,
    runner_kind,
)
from cidash.sim.world import (
    CachePlan,
    JobFacts,
    SectionPlan,
    SimCommit,
    SimJob,
    SimPipeline,
    SimProject,
    SimTag,
    World,
)


def _sha(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def _sha256(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def _ms(t: float) -> float:
    return round(t, 3)


@dataclass
class _Writer:
    key: str
    start: float
    end: float
    job_id: int
    migrated: bool
    ref: str


def _last_commit_finder(project: SimProject, commit: SimCommit) -> Callable[[str], str | None]:
    """Git's last commit touching a pathspec at ``commit`` (from each file's last change; the story never
    deletes a file)."""

    def last_commit(spec: str) -> str | None:
        shas = [sha for path, sha in commit.last_change.items() if gitlab_keys.pathspec_matches(spec, path)]
        return max(shas, key=lambda sha: project.commits[sha].at) if shas else None

    return last_commit


@dataclass
class Planner:
    """Plans jobs (times, outcome, trace facts) for the generator and for API mutations at run time."""

    scenario: Scenario
    states: dict[str, RepoState] = field(default_factory=dict)  # commit sha -> state
    cache: dict[str, str] = field(default_factory=dict)  # cache key -> critical checksum it was built from
    rg_free_at: dict[str, float] = field(default_factory=dict)
    writers: list[_Writer] = field(default_factory=list)
    runner_tokens: dict[int, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)  # commit sha -> critical checksum

    # -- images ---------------------------------------------------------------------------------------------
    def image_ref(self, project: SimProject, tag: str) -> str:
        return f"{self.scenario.registry_host}/{project.path}/ci:{tag}"

    def ensure_tag(self, project: SimProject, state: RepoState, at: float) -> SimTag:
        tag = project.tags.get(state.image_tag)
        if tag is None:
            rng = random.Random(_sha(self.scenario.seed, "tag", state.image_tag))
            size = (
                self.scenario.alpine_size + rng.randint(-300_000, 300_000)
                if state.migrated
                else self.scenario.debian_size + rng.randint(-600_000, 900_000)
            )
            tag = SimTag(
                name=state.image_tag,
                digest="sha256:" + _sha256(self.scenario.seed, "manifest", state.image_tag),
                revision=_sha256(self.scenario.seed, "config", state.image_tag),
                total_size=size,
                created_at=_ms(at),
                flavor=state.flavor,
            )
            project.tags[tag.name] = tag
        return tag

    # -- pipelines ------------------------------------------------------------------------------------------
    def plan_pipeline(
        self,
        world: World,
        project: SimProject,
        pipeline: SimPipeline,
        commit: SimCommit,
        rng: random.Random,
        *,
        dockerfile_changed: bool,
        force_build: bool = False,
        history: bool = True,
    ) -> None:
        state = self.states[commit.sha]
        pipeline.design = "migrated" if state.migrated else "legacy"
        specs: list[tuple[str, str, str]] = [
            ("build-ci-image", "image", "image"),
            ("setup", "prepare", "setup"),
            ("verify-ci-image", "verify", "verify"),
            ("lint", "test", "lint"),
            ("test 1/2", "test", "test"),
            ("test 2/2", "test", "test"),
            ("build", "build", "build"),
        ]
        if pipeline.ref == project.default_branch:
            specs.append(("release", "release", "release"))
        jobs: list[SimJob] = []
        for name, stage, kind in specs:
            job = SimJob(
                id=world.next_job_id,
                project_id=project.id,
                pipeline_id=pipeline.id,
                name=name,
                stage=stage,
                created_at=pipeline.created_at,
                pending_at=None,
                started_at=None,
                finished_at=None,
                final_status="created",
                kind=kind,
                user=pipeline.user,
            )
            world.next_job_id += 1
            jobs.append(job)
            project.jobs[job.id] = job
            pipeline.job_ids.append(job.id)
        manual_build = state.migrated and not (dockerfile_changed or force_build)
        ready = pipeline.created_at + rng.uniform(0.5, 2.0)
        stage_order = list(STAGES)
        blocked = False
        block_at = 0.0
        for stage in stage_order:
            stage_jobs = [j for j in jobs if j.stage == stage]
            if not stage_jobs:
                continue
            if blocked:
                if not block_at:
                    block_at = max((j.finished_at or 0.0) for j in world.pipeline_jobs(project, pipeline))
                for j in stage_jobs:
                    j.final_status = "skipped"
                    j.skipped_at = block_at
                continue
            end = ready
            for job in stage_jobs:
                if job.kind == "image" and manual_build:
                    job.manual = True
                    job.allow_failure = True
                    job.final_status = "manual"
                    if (
                        history
                        and pipeline.ref == project.default_branch
                        and rng.random() < self.scenario.manual_play_rate
                    ):
                        # someone pressed play on the manual image build (it runs beside the later stages)
                        job.played = True
                        self.run_job(world, project, pipeline, job, commit, ready + rng.uniform(60.0, 1800.0), rng)
                    continue
                final = self.run_job(world, project, pipeline, job, commit, ready, rng, history=history)
                end = max(end, final.finished_at or ready)
            if any(j.final_status == "failed" and not j.allow_failure for j in stage_jobs):
                # later stages wait for a retry (history: a person retries) or are skipped
                if history:
                    green = self._retry_until_green(world, project, pipeline, stage_jobs, commit, rng)
                    if green is None:
                        blocked = True
                        continue
                    end = green
                else:
                    blocked = True
                    continue
            ready = end + rng.uniform(0.5, 3.0)

    def _retry_until_green(  # noqa: PLR0917
        self,
        world: World,
        project: SimProject,
        pipeline: SimPipeline,
        stage_jobs: list[SimJob],
        commit: SimCommit,
        rng: random.Random,
    ) -> float | None:
        end = max(j.finished_at or 0.0 for j in stage_jobs)
        for job in list(stage_jobs):
            current = job
            attempts = 0
            while current.final_status == "failed" and not current.allow_failure:
                attempts += 1
                if attempts > 3 or (current.kind != "image" and rng.random() < 0.4):
                    return None  # nobody retried: the pipeline fails
                assert current.finished_at is not None
                again = current.finished_at + rng.uniform(240.0, 1500.0)
                current = self._new_attempt(world, project, pipeline, current, again)
                self.run_job(world, project, pipeline, current, commit, again, rng, history=True)
                end = max(end, current.finished_at or again)
        return end

    def _new_attempt(self, world: World, project: SimProject, pipeline: SimPipeline, old: SimJob, at: float) -> SimJob:
        old.retried = True
        job = SimJob(
            id=world.next_job_id,
            project_id=project.id,
            pipeline_id=pipeline.id,
            name=old.name,
            stage=old.stage,
            created_at=_ms(at),
            pending_at=None,
            started_at=None,
            finished_at=None,
            final_status="created",
            kind=old.kind,
            user=old.user,
            allow_failure=old.allow_failure,
        )
        world.next_job_id += 1
        project.jobs[job.id] = job
        pipeline.job_ids.append(job.id)
        return job

    # -- one job ------------------------------------------------------------------------------------------------
    def run_job(  # noqa: PLR0917
        self,
        world: World,
        project: SimProject,
        pipeline: SimPipeline,
        job: SimJob,
        commit: SimCommit,
        ready: float,
        rng: random.Random,
        *,
        history: bool = True,
        forced: bool = False,
    ) -> SimJob:
        sc = self.scenario
        state = self.states[commit.sha]
        migrated = state.migrated
        protected = pipeline.ref in project.protected
        checksum = self.checksums.get(commit.sha)
        if checksum is None:
            checksum = self.checksums[commit.sha] = content.critical_checksum(commit.files)

        job.pending_at = _ms(ready)
        queue = rng.uniform(1.0, 8.0)
        start = ready + queue
        if migrated and job.kind == "setup":
            job.resource_group = "cache_updates"
            project.resource_groups.setdefault("cache_updates", _ms(sc.migration_at.timestamp()))
            free = self.rg_free_at.get("cache_updates", 0.0)
            if free > ready:
                job.resource_at = _ms(free + 0.5)
                start = max(start, free + 0.5 + rng.uniform(1.0, 4.0))
        runner = rng.randint(1, sc.runners)
        job.runner_id = runner

        # image and pull model
        tag = self.ensure_tag(project, state, commit.at).view(start) if job.kind != "image" else None
        if job.kind == "image":
            image, image_size = DOCKER_IMAGE, DOCKER_IMAGE_SIZE
            image_digest = "sha256:" + _sha256("docker-image", DOCKER_IMAGE)
            image_id = _sha256("docker-image-id", DOCKER_IMAGE)
            digest_ref = f"docker@{image_digest}"
        else:
            assert tag is not None
            image = self.image_ref(project, tag.name)
            image_size = tag.total_size
            image_digest = tag.digest
            image_id = tag.revision
            digest_ref = f"{sc.registry_host}/{project.path}/ci@{tag.digest}"
        pulled = rng.random() < sc.pull_probability

        # cache plan
        key: str | None = None
        restores: list[CachePlan] = []
        archive: CachePlan | None = None
        uses_cache = job.kind in ("setup", "lint", "test", "build")
        writer = uses_cache and (not migrated or job.kind == "setup")
        cache_mb = 0.0
        stale = False
        if uses_cache:
            if migrated:
                cache_mb = sc.migrated_cache_mb
            else:
                day = (pipeline.created_at - sc.start.timestamp()) / 86400.0
                cache_mb = sc.legacy_cache_mb + 6.0 * max(0.0, day)
            # GitLab computes the key at pipeline creation from the files committed at the pipeline's SHA (both CI
            # designs list `.cache-key`; only the migrated one commits it), with the rules of its version.
            version = gitlab_keys.parse_version(sc.gitlab_version)
            base = gitlab_keys.cache_key(
                content.CI_CACHE_KEY, commit.files, version, last_commit=_last_commit_finder(project, commit)
            )
            maintainer = job.user == MAINTAINER_USER
            key = gitlab_keys.job_cache_key(base, version, protected_ref=protected, maintainer=maintainer)
            job.cache_key = key
            job.writes_cache = writer
            if key in self.cache:
                restores.append(CachePlan("restore", key, "hit"))
                stale = self.cache[key] != checksum
            else:
                restores.append(CachePlan("restore", key, "miss"))
                if migrated and not protected and runner_kind(runner).fallback_keys:
                    # cache:fallback_keys get the same protection suffix (CACHE_FALLBACK_KEY would not)
                    fb = gitlab_keys.job_cache_key("go-mod-main", version, protected_ref=False, maintainer=maintainer)
                    restores.append(CachePlan("restore", fb, "hit" if fb in self.cache else "miss", fallback=True))
            job.stale_restore = stale

        # failure decision
        fail = False
        if job.kind == "image":
            rate = sc.migrated_build_failure_rate if migrated else sc.legacy_build_failure_rate
            fail = rng.random() < rate
        elif job.kind == "test":
            fail = rng.random() < sc.test_failure_rate

        # sections
        t = start + rng.uniform(0.2, 0.6)
        sections: list[SectionPlan] = []

        def section(name: str, seconds: float, header: str) -> None:
            nonlocal t
            begin = t
            t += max(seconds, 0.05)
            sections.append(SectionPlan(name, _ms(begin), _ms(t), header))
            t += rng.uniform(0.01, 0.08)

        section("resolve_secrets", rng.uniform(0.05, 0.3), "Resolving secrets")
        if pulled:
            pe = sc.pull_overhead_s + image_size / MB / sc.pull_bandwidth_mb_s * rng.uniform(0.9, 1.15)
        else:
            pe = sc.local_image_s * rng.uniform(0.7, 1.4)
        if job.kind == "image":
            pe += rng.uniform(2.5, 4.0)  # docker:dind service start
        section("prepare_executor", pe, f'Preparing the "{runner_kind(runner).executor}" executor')
        section("prepare_script", rng.uniform(0.6, 1.4), "Preparing environment")
        section("get_sources", rng.uniform(4.0, 8.0), "Getting source from Git repository")
        if restores:
            seconds = 0.0
            for r in restores:
                seconds += (0.8 + cache_mb / sc.restore_bandwidth_mb_s) if r.outcome == "hit" else 0.4
            section("restore_cache", seconds * rng.uniform(0.9, 1.1), "Restoring cache")
        if job.kind == "release":
            section("download_artifacts", rng.uniform(0.8, 1.5), "Downloading artifacts")
        script, script_end = self._script(job, state, commit, project, t, rng, fail, stale, restores, forced)
        section("step_script", script_end - t, 'Executing "step_script" stage of the job script')
        if uses_cache and not fail and key is not None:
            if writer:
                up_to_date = migrated and restores[0].outcome == "hit" and not stale
                archive = CachePlan("archive", key, "up_to_date" if up_to_date else "created")
                secs = 0.6 if up_to_date else 1.0 + cache_mb / sc.archive_bandwidth_mb_s
            else:
                archive = CachePlan("archive", key, "skipped")
                secs = 0.1
            a_start = t
            section("archive_cache", secs * rng.uniform(0.9, 1.1), "Saving cache for successful job")
            if writer:
                self.cache[key] = checksum
                self.writers.append(_Writer(key, a_start, t, job.id, migrated, pipeline.ref))
        if job.kind == "build" and not fail:
            section("upload_artifacts_on_success", rng.uniform(1.5, 3.0), "Uploading artifacts for successful job")
        section(
            "cleanup_file_variables", rng.uniform(0.1, 0.3), "Cleaning up project directory and file based variables"
        )
        finished = t + rng.uniform(0.1, 0.4)

        job.started_at = _ms(start)
        job.finished_at = _ms(finished)
        if job.resource_group:
            self.rg_free_at[job.resource_group] = finished
        job.final_status = "failed" if fail else "success"
        job.failure_reason = "script_failure" if fail else None
        job.image_tag = tag.name if tag else None
        if job.kind == "image" and not fail:
            # a successful build pushes the tag (if it was not there yet); a forced rebuild pushes a new digest
            existing = project.tags.get(state.image_tag)
            pushed = self.ensure_tag(project, state, finished)
            if forced and existing is not None:
                n = len(existing.rebuilds) + 1
                pushed.rebuilds.append(
                    (
                        _ms(finished),
                        "sha256:" + _sha256(sc.seed, "manifest", state.image_tag, "rebuild", job.id),
                        _sha256(sc.seed, "config", state.image_tag, "rebuild", job.id),
                        existing.total_size + 1000 * n,
                    )
                )
        cache_events = tuple(restores) + ((archive,) if archive else ())
        kind = runner_kind(runner)
        job.facts = JobFacts(
            runner_version=kind.version,
            runner_revision=kind.revision,
            runner_name=f"sim-runner-{runner}",
            runner_token=self.runner_token(runner),
            executor=kind.executor,
            timestamps=kind.timestamps,
            step_runner=kind.step_runner,
            image=image,
            image_id="sha256:" + image_id,
            image_digest=digest_ref,
            pulled=pulled,
            sections=tuple(sections),
            cache=cache_events,
            script=tuple(script),
            success=not fail,
            checkout_sha=commit.sha,
            ref=pipeline.ref,
            # a third of failing test jobs dump so much that the runner's output_limit (1 MiB) cuts the log;
            # decided by a hash, not the random stream, so the rest of the story does not move
            output_limit=OUTPUT_LIMIT
            if fail and job.kind == "test" and int(_sha(sc.seed, "verbose", job.id)[:4], 16) % 3 == 0
            else None,
        )
        return job

    def runner_token(self, runner: int) -> str:
        token = self.runner_tokens.get(runner)
        if token is None:
            token = "t" + _sha("runner", self.scenario.seed, runner)[:7]
            self.runner_tokens[runner] = token
        return token

    def _script(  # noqa: PLR0917
        self,
        job: SimJob,
        state: RepoState,
        commit: SimCommit,
        project: SimProject,
        t: float,
        rng: random.Random,
        fail: bool,
        stale: bool,
        restores: list[CachePlan],
        forced: bool,
    ) -> tuple[list[tuple[float, str]], float]:
        lines: list[tuple[float, str]] = []

        def out(seconds: float, text: str) -> None:
            nonlocal t
            t += seconds
            lines.append((_ms(t), text))

        image = self.image_ref(project, state.image_tag)
        if job.kind == "setup":
            if state.migrated:
                out(0.3, "$ sha256sum --check --strict .cache-key")
                for path in CRITICAL_FILES:
                    out(0.01, f"{path}: OK")
            else:
                out(0.3, "$ sha256sum go.mod go.sum .gitlab-ci.yml Dockerfile.ci .mise/config.toml > .cache-key")
            out(0.2, "$ go mod download")
            hit = bool(restores) and restores[0].outcome == "hit"
            if hit and not stale:
                out(rng.uniform(2.0, 5.0), "all modules present in the module cache")
            else:
                for mod in content.go_mod(state.deps).decode().splitlines():
                    if mod.startswith("\t"):
                        name, ver = mod.strip().split()
                        out(rng.uniform(2.0, 7.0), f"go: downloading {name} {ver}")
        elif job.kind == "image":
            if state.migrated:
                out(0.3, f'$ ./scripts/ci-image-exists.sh "{image}" || ./scripts/ci-image-build.sh "{image}"')
                present = state.image_tag in project.tags
                exists = present and not forced
                code = 200 if present else 404
                out(
                    rng.uniform(0.3, 1.0),
                    f"HEAD https://{self.scenario.registry_host}/v2/{project.path}/ci/manifests/{state.image_tag}"
                    f" -> {code}",
                )
                if present and forced:
                    out(0.05, f"FORCE_CI_IMAGE_REBUILD=true: rebuilding {state.image_tag} anyway")
                if exists:
                    out(0.1, f"image {state.image_tag} already exists, skipping build")
                else:
                    out(rng.uniform(60.0, 110.0), f"building {image} from Dockerfile.ci")
                    out(rng.uniform(8.0, 18.0), f"pushing {image}")
            else:
                out(0.3, f'$ docker pull "{image}" || true')
                out(rng.uniform(20.0, 35.0), f"{state.image_tag}: Pulling from {project.path}/ci")
                out(0.1, f"Status: Downloaded newer image for {image}")
                out(0.3, f'$ docker build --cache-from "{image}" -f Dockerfile.ci -t "{image}" .')
                out(rng.uniform(30.0, 60.0), "Successfully built " + _sha("build", commit.sha)[:12])
                out(0.3, f'$ docker push "{image}"')
                out(rng.uniform(15.0, 30.0), f"The push refers to repository [{image.rsplit(':', 1)[0]}]")
            if fail:
                out(
                    rng.uniform(1.0, 4.0),
                    "blob upload unknown: blob upload invalid (another push of this tag raced us)",
                )
        elif job.kind == "verify":
            out(0.3, "$ ./scripts/verify-tools.sh go golangci-lint gotestsum mise git jq")
            for tool in TOOLS:
                out(rng.uniform(0.1, 0.5), f"ok   {tool}")
            out(0.05, f"all {len(TOOLS)} tools verified")
        elif job.kind == "lint":
            out(0.3, "$ golangci-lint run ./...")
            out(rng.uniform(35.0, 70.0), "0 issues.")
        elif job.kind == "test":
            out(0.3, "$ gotestsum -- -race ./...")
            for pkg in ("internal/server", "internal/config", "internal/store", "cmd/app"):
                out(rng.uniform(15.0, 45.0), f"ok   {content.MODULE}/{pkg} {rng.uniform(0.5, 9.0):.3f}s")
            if fail:
                out(rng.uniform(2.0, 10.0), f"FAIL {content.MODULE}/internal/store (flaky: TestCompaction)")
        elif job.kind == "build":
            out(0.3, "$ go build -o bin/app ./cmd/app")
            out(rng.uniform(40.0, 90.0), "built bin/app")
        elif job.kind == "release":
            out(0.3, "$ ./scripts/release.sh")
            out(rng.uniform(15.0, 35.0), f"released app {commit.sha[:8]}")
        return lines, t + rng.uniform(0.2, 0.8)

    # -- mutations at run time ---------------------------------------------------------------------------------
    def _rng(self, *parts: object) -> random.Random:
        return random.Random(_sha(self.scenario.seed, *parts))

    def create_pipeline(  # noqa: PLR0917
        self,
        world: World,
        project: SimProject,
        ref: str,
        variables: list[dict[str, str]],
        now: float,
        user: str,
        source: str,
    ) -> SimPipeline:
        commit = world.resolve_ref(project, ref)
        if commit is None or ref not in project.heads:
            raise KeyError(ref)
        pipeline = SimPipeline(
            id=world.next_pipeline_id,
            iid=len(project.pipelines) + 1,
            project_id=project.id,
            ref=ref,
            sha=commit.sha,
            before_sha="0" * 40,
            source=source,
            created_at=_ms(now),
            user=user,
            variables=variables,
        )
        world.next_pipeline_id += 1
        project.pipelines[pipeline.id] = pipeline
        force = any(v.get("key") == "FORCE_CI_IMAGE_REBUILD" and v.get("value") == "true" for v in variables)
        if commit.sha not in self.states:
            return pipeline  # docs project: no CI model, the pipeline stays created
        self.plan_pipeline(
            world,
            project,
            pipeline,
            commit,
            self._rng("pipeline", pipeline.id),
            dockerfile_changed=False,
            force_build=force,
            history=False,
        )
        if force:
            for job in world.pipeline_jobs(project, pipeline):
                if job.kind == "image" and job.facts is not None:
                    # rebuild requested: the job really builds (no "exists" shortcut)
                    self._rerun(world, project, pipeline, job, job.pending_at or now, forced=True)
        return pipeline

    def _rerun(
        self, world: World, project: SimProject, pipeline: SimPipeline, job: SimJob, ready: float, *, forced: bool
    ) -> None:
        commit = project.commits[pipeline.sha]
        self.run_job(
            world, project, pipeline, job, commit, ready, self._rng("job", job.id), history=False, forced=forced
        )
        self._resume_after(world, project, pipeline, job)

    def _resume_after(self, world: World, project: SimProject, pipeline: SimPipeline, job: SimJob) -> None:
        """Re-plan later-stage jobs that have not run (skipped, or planned before this job's new end)."""
        order = list(STAGES)
        idx = order.index(job.stage) if job.stage in order else len(order)
        ready = (job.finished_at or 0.0) + 1.0
        commit = project.commits[pipeline.sha]
        failed = job.final_status == "failed"
        block_at = job.finished_at or 0.0
        for stage in order[idx + 1 :]:
            later = [
                j
                for j in world.pipeline_jobs(project, pipeline)
                if j.stage == stage and not j.retried and not j.manual and j.canceled_at is None
            ]
            if not later:
                continue
            end = ready
            for j in later:
                if failed:
                    j.final_status = "skipped"
                    j.skipped_at = block_at  # created until the failure is known, then skipped
                    j.pending_at = j.started_at = j.finished_at = None
                    j.facts = None
                    continue
                if j.started_at is not None and j.started_at >= ready:
                    continue  # already planned after us
                if j.final_status in ("skipped", "created") or (j.started_at or 0) < ready:
                    self.run_job(
                        world, project, pipeline, j, commit, ready, self._rng("job", j.id, ready), history=False
                    )
                end = max(end, j.finished_at or ready)
            if any(j.final_status == "failed" for j in later) and not failed:
                failed = True
                block_at = end
            ready = end + 1.0

    def retry(self, world: World, project: SimProject, job: SimJob, now: float, user: str) -> SimJob:
        pipeline = project.pipelines[job.pipeline_id]
        new = self._new_attempt(world, project, pipeline, job, now)
        new.user = user
        new.manual = False
        self._rerun(world, project, pipeline, new, now + 0.5, forced=False)
        return new

    def play(self, world: World, project: SimProject, job: SimJob, now: float, user: str) -> SimJob:
        pipeline = project.pipelines[job.pipeline_id]
        job.user = user
        job.played = True
        self._rerun(world, project, pipeline, job, now + 0.5, forced=False)
        return job

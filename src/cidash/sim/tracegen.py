"""Job logs as the job's runner prints them, rendered from a job's :class:`~cidash.sim.world.JobFacts`.

What the runner's version and settings decide (gitlab-facts.md section 2): runners with per-line timestamps
(``JobFacts.timestamps``) prefix every line with ``2026-11-02T10:15:03.123000Z 00O ``, older ones print none;
``prepare_executor`` names the runner's executor (``Preparing the "docker+machine" executor``); a missing cache on
runners up to 14.9 (distributed cache) reads ``FATAL: file does not exist``, later ones ``WARNING: file does not
exist``; a fallback key's attempt is printed exactly like the main key's, except on the step-runner path
(``JobFacts.step_runner``), which adds `` (fallback)``. Sections are framed with
``section_start:<unix>:<name>\\r\\x1b[0K`` / ``section_end:<unix>:<name>\\r\\x1b[0K`` markers; the docker
executors print the image and digest lines (``Pulling docker image`` or the ``"if-not-present"`` local line);
cache lines carry the actual key with its ``-protected``/``-non_protected`` suffix. A job that is still running
at ``now`` gets the lines printed so far, without the final status line.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

from cidash.sim.world import JobFacts, SimJob

ESC = "\x1b"
CLEAR = "\r\x1b[0K"
GREEN = "\x1b[32;1m"
CYAN = "\x1b[36;1m"
YELLOW = "\x1b[0;33m"
RED = "\x1b[31;1m"
RESET = "\x1b[0;m"

_COLLAPSED = {"prepare_executor", "prepare_script", "get_sources"}


def _stamp(t: float) -> str:
    # the same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ") for four-digit years, at a third of the cost
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _major(facts: JobFacts) -> int:
    return int(facts.runner_version.split(".")[0])


def _warning(text: str) -> str:
    return f"{YELLOW}WARNING: {text:<50}{RESET}"


def trace_lines(job: SimJob, project_path: str, project_id: int) -> list[tuple[float, str]]:
    """(time, text) for every line of the job's complete log."""
    facts = job.facts
    if facts is None:
        return []
    lines: list[tuple[float, str]] = []
    first = facts.sections[0].start
    start = job.started_at if job.started_at is not None else first
    lines.append((start, f"Running with gitlab-runner {facts.runner_version} ({facts.runner_revision})"))
    system_id = f", system ID: s_{facts.runner_token[1:]}0a1b2c" if _major(facts) >= 15 else ""
    lines.append((start, f"  on {facts.runner_name} {facts.runner_token}{system_id}"))
    for section in facts.sections:
        opts = "[collapsed=true]" if section.name in _COLLAPSED else ""
        lines.append(
            (
                section.start,
                f"{ESC}[0Ksection_start:{int(section.start)}:{section.name}{opts}{CLEAR}{ESC}[0K{CYAN}{section.header}{RESET}",
            )
        )
        lines.extend(_section_body(job, facts, section.name, section.start, section.end, project_path, project_id))
        lines.append((section.end, f"{ESC}[0Ksection_end:{int(section.end)}:{section.name}{CLEAR}"))
    if facts.output_limit is not None:
        return _truncate(lines, facts)
    end = job.finished_at if job.finished_at is not None else facts.sections[-1].end
    if facts.success:
        lines.append((end, f"{GREEN}Job succeeded{RESET}"))
    else:
        lines.append((end, f"{RED}ERROR: Job failed: exit code 1{RESET}"))
    return lines


def _section_body(  # noqa: PLR0917
    job: SimJob, facts: JobFacts, name: str, start: float, end: float, project_path: str, project_id: int
) -> list[tuple[float, str]]:
    t = start + 0.001
    out: list[tuple[float, str]] = []

    def add(text: str) -> None:
        out.append((min(t, end), text))

    if name == "prepare_executor":
        add(f"{ESC}[0KUsing Docker executor with image {facts.image} ...{RESET}")
        if job.kind == "image":
            add(f"{ESC}[0KStarting service docker:27.3-dind ...{RESET}")
        if facts.pulled:
            add(f"{ESC}[0KPulling docker image {facts.image} ...{RESET}")
        else:
            add(f'{ESC}[0KUsing locally found image version due to "if-not-present" pull policy{RESET}')
        t = end - 0.01
        add(
            f"{ESC}[0KUsing docker image {facts.image_id} for {facts.image} with digest {facts.image_digest} ...{RESET}"
        )
    elif name == "prepare_script":
        add(f"Running on runner-{facts.runner_token}-project-{project_id}-concurrent-0 via {facts.runner_name}...")
    elif name == "get_sources":
        add(f"{GREEN}Fetching changes with git depth set to 20...{RESET}")
        add(f"Initialized empty Git repository in /builds/{project_path}/.git/")
        add(f"{GREEN}Created fresh repository.{RESET}")
        t = end - 0.01
        add(f"{GREEN}Checking out {facts.checkout_sha[:8]} as detached HEAD (ref is {facts.ref})...{RESET}")
        add(f"{GREEN}Skipping Git submodules setup{RESET}")
    elif name == "restore_cache":
        for event in facts.cache:
            if event.op != "restore":
                continue
            label = f"{event.key} (fallback)" if event.fallback and facts.step_runner else event.key
            add(f"{GREEN}Checking cache for {label}...{RESET}")
            old = _major(facts) <= 14
            if event.outcome == "hit":
                cache_url = f"https://storage.example.com/runner-cache/project/{project_id}/{event.key}"
                add(f"Downloading cache.zip from {cache_url}" if old else f"Downloading cache from {cache_url}")
                t = end - 0.01
                add(f"{GREEN}Successfully extracted cache{RESET}")
            else:
                add(f"{RED}FATAL: {'file does not exist':<50}{RESET}" if old else _warning("file does not exist"))
                add(
                    f"{YELLOW}WARNING: Failed to extract cache{RESET}"
                    if old
                    else f"{RED}Failed to extract cache{RESET}"
                )
            t += 0.2
    elif name == "step_script":
        add(
            f"{ESC}[0KUsing docker image {facts.image_id} for {facts.image} with digest {facts.image_digest} ...{RESET}"
        )
        for at, text in facts.script:
            line = f"{GREEN}{text}{RESET}" if text.startswith("$ ") else text
            out.append((min(at, end), line))
    elif name == "archive_cache":
        for event in facts.cache:
            if event.op != "archive":
                continue
            if event.outcome == "skipped":
                add(f"{GREEN}Not uploading cache {event.key} due to policy{RESET}")
                continue
            add(f"{GREEN}Creating cache {event.key}...{RESET}")
            add(f".go/pkg/mod/: found 5321 matching artifact files and directories{RESET}")
            if event.outcome == "up_to_date":
                add("Archive is up to date!                            ")
            else:
                add(f"Uploading cache.zip to https://storage.example.com/runner-cache/project/{project_id}/{event.key}")
                t = end - 0.01
                add(f"{GREEN}Created cache{RESET}")
    elif name == "upload_artifacts_on_success":
        add(f"{GREEN}Uploading artifacts...{RESET}")
        add(f"bin/: found 2 matching artifact files and directories{RESET}")
        t = end - 0.01
        add(
            f'Uploading artifacts as "archive" to coordinator... 201 Created{RESET}'
            f"  id={job.id} responseStatus=201 Created"
        )
    return out


_PREFIX_BYTES = len("2026-11-02T10:15:03.123000Z 00O ")


def _truncate(lines: list[tuple[float, str]], facts: JobFacts) -> list[tuple[float, str]]:
    """The log as the runner stored it past its output limit: verbose test output, then the limit message."""
    limit = facts.output_limit or 0
    step = next(s for s in facts.sections if s.name == "step_script")
    cut = next(i for i, (_, text) in enumerate(lines) if f":{step.name}{CLEAR}" in text and "section_end:" in text)
    head = lines[:cut]
    per_line = (_PREFIX_BYTES if facts.timestamps else 0) + 1  # + the newline
    size = sum(len(text.encode()) + per_line for _, text in head)
    verbose: list[str] = []
    i = 0
    while size < limit:
        text = (
            f"    store_test.go:{100 + i % 900}: compaction mismatch at key k-{i:06d}: "
            f"got {i * 7919 % 1000003:07d}, want {i * 104729 % 1000003:07d}"
        )
        verbose.append(text)
        size += len(text) + per_line
        i += 1
    start = head[-1][0]
    span = max(step.end - start - 0.01, 0.001)
    out = head + [(start + span * (k + 1) / (len(verbose) + 1), text) for k, text in enumerate(verbose)]
    out.append((step.end - 0.005, f"{RED}Job's log exceeded limit of {limit} bytes.{RESET}"))
    out.append((step.end - 0.005, f"{RED}Job execution will continue but no more output will be collected.{RESET}"))
    return out


def render_trace(job: SimJob, project_path: str, project_id: int, now: float) -> bytes:
    """The log as GitLab serves it at ``now`` (lines written so far), with per-line timestamp prefixes if the
    job's runner writes them."""
    return _render(job, project_path, project_id, now)[0]


def _render(job: SimJob, project_path: str, project_id: int, now: float) -> tuple[bytes, bool]:
    """(the log at ``now``, whether it is the whole log: no line lies after ``now``)."""
    stamped = job.facts is not None and job.facts.timestamps
    parts: list[str] = []
    for at, text in trace_lines(job, project_path, project_id):
        if at > now:
            return "".join(parts).encode(), False
        parts.append(f"{_stamp(at)} 00O {text}\n" if stamped else f"{text}\n")
    return "".join(parts).encode(), True


class TraceStore:
    """Whole logs once rendered, kept zlib-compressed up to a byte budget, as GitLab keeps a finished job's log
    (in object storage) instead of writing it again for each reader.

    A log is kept only once no line lies after ``now`` (a running job's log still grows), and it is used again
    only for the same job plan (facts, start, finish, kind): a mutation that changes what the log would say
    misses the store and renders afresh. Callers hold the world's lock.
    """

    def __init__(self, budget_bytes: int = 256 << 20) -> None:
        self.budget = budget_bytes
        self.used = 0
        self._logs: dict[tuple[int, int], tuple[tuple[object, ...], bytes]] = {}

    def trace(self, job: SimJob, project_path: str, project_id: int, now: float) -> bytes:
        """The same bytes as :func:`render_trace`."""
        plan = (job.facts, job.started_at, job.finished_at, job.kind, project_path)
        key = (project_id, job.id)
        kept = self._logs.get(key)
        if kept is not None and _same_plan(kept[0], plan):
            return zlib.decompress(kept[1])
        body, whole = _render(job, project_path, project_id, now)
        if whole and job.facts is not None:
            packed = zlib.compress(body, 1)
            if kept is not None:
                self.used -= len(kept[1])
                del self._logs[key]
            if self.used + len(packed) <= self.budget:
                self._logs[key] = (plan, packed)
                self.used += len(packed)
        return body


def _same_plan(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return a[0] is b[0] and a[1:] == b[1:]

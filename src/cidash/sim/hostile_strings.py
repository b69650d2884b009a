"""The simulator's hostile-strings mode (``Scenario(hostile_strings=True)``): what a careless or malicious GitLab
user can put in the strings cidash shows.

GitLab keeps job names, branch names, tag names, usernames, commit titles, runner descriptions and project
names as the user typed them, and a job log is whatever the job printed (bytes, not necessarily UTF-8). This
mode puts into each of them: terminal escapes (OSC 0 window title, CSI 2J clear, OSC 8 link), a C1 control
(U+009B, an 8-bit CSI), bidi overrides and isolates, Rich/Textual markup (``[bold]``, ``[@click=...]``),
spreadsheet formulas (``=``, ``+``, ``-``, ``@``), Markdown/HTML table breakers, and in logs bytes that are not
UTF-8. The history's shape (pipelines, statuses, timings, keys) is the same as without the mode; only the
strings change, so every view still has rows to show them in.

Used by :func:`cidash.sim.scenario.build_world` (names) and the ``/trace`` handler (log lines). The tests of
cidash's outputs (``tests/integration/test_hostile_output.py``) assert that none of it reaches a terminal or a
report raw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cidash.sim.world import SimTag, World

OSC_TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
OSC_LINK = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
C1_CSI = "\x9b2J"
BIDI = "\u202eexe.txt\u202c\u2066x\u2069"
MARKUP = "[bold]x[/][@click=app.quit]q[/]"
FORMULA = '=HYPERLINK("https://evil.example","x")'
MARKDOWN = "a|b</td><script>alert(1)</script>`|"

#: Every escape family, so a test can say which one got through.
FAMILIES: tuple[str, ...] = (OSC_TITLE, CLEAR, OSC_LINK, C1_CSI, BIDI, MARKUP, FORMULA, MARKDOWN)

#: Job names as the world plans them -> the hostile name (the image-build, verify and setup jobs keep theirs, so
#: the criteria still find them).
JOB_NAMES: dict[str, str] = {
    "lint": f"lint{OSC_TITLE}",
    "test 1/2": FORMULA,
    "test 2/2": f"test{MARKDOWN}",
    "build": f"build{CLEAR}{C1_CSI}{MARKUP}",
    "release": f"-release{BIDI}",
}

#: Topic branches become these (by their order of appearance, cycling).
TOPIC_REFS: tuple[str, ...] = (
    f"feature/{OSC_TITLE}",
    f"+feature/{MARKDOWN}",
    f"@feature/{BIDI}",
    f"feature/{OSC_LINK}{MARKUP}",
)

USERNAME = f"mallory{OSC_TITLE}"
COMMIT_TITLE = f"Fix {CLEAR}{OSC_LINK} {BIDI} {MARKUP}"
PROJECT_NAME = f"app{OSC_TITLE}"
PROJECT_DESCRIPTION = f"{MARKDOWN} {FORMULA}"
#: An extra registry tag, pushed before the story (so ``latest`` is still the newest real tag).
TAG_NAME = f"=1+1{OSC_TITLE}{BIDI}"


def runner_description(runner_id: int) -> str:
    return f"sim-runner-{runner_id}{OSC_TITLE}{C1_CSI}"


#: Lines a hostile job prints at the start of its script (bytes: one of them is not UTF-8).
LOG_LINES: tuple[bytes, ...] = (
    f"echo {OSC_TITLE}title changed".encode(),
    f"{CLEAR}screen cleared".encode(),
    f"{OSC_LINK} a link".encode(),
    f"{C1_CSI} an 8-bit CSI".encode(),
    f"bidi {BIDI} end".encode(),
    b"not UTF-8: \xff\xfe\xc3\x28 end",
    f"markup {MARKUP}".encode(),
    f"{FORMULA}".encode(),
    f"| {MARKDOWN} |".encode(),
    b"\x1b[31mred is fine\x1b[0m and \x1b[1;32mbold green\x1b[0m",
    b"bell\x07 backspace\x08 vt\x0b ff\x0c nul\x00 del\x7f",
    b"\x1bP1$qm\x1b\\ a DCS request, \x1b[6n a cursor report request, \x1b[?1049h alternate screen",
)

#: A cache key is user text too (``cache:key`` can be any string): one more restore attempt, a miss, at the start
#: of every ``restore_cache`` section.
CACHE_KEY = f"=1+1|`k`{OSC_TITLE}[bold]"
CACHE_LINES: tuple[bytes, ...] = (
    f"Checking cache for {CACHE_KEY}...".encode(),
    b"WARNING: file does not exist                       ",
    b"Failed to extract cache",
)


def apply(world: World) -> None:
    """Rename what the scenario generated (called once by ``build_world`` when the mode is on)."""
    from cidash.sim.world import SimTag

    topic_names: dict[str, str] = {}
    legacy = world.scenario.legacy_branch
    for project in world.projects.values():
        project.name = PROJECT_NAME
        project.description = PROJECT_DESCRIPTION
        for pipeline in project.pipelines.values():
            ref = pipeline.ref
            if ref.startswith("feature/") and ref != legacy:
                if ref not in topic_names:
                    topic_names[ref] = TOPIC_REFS[len(topic_names) % len(TOPIC_REFS)] + f"-{len(topic_names)}"
                pipeline.ref = topic_names[ref]
                pipeline.user = USERNAME
        for job in project.jobs.values():
            if job.name == "lint":
                job.user = USERNAME
            job.name = JOB_NAMES.get(job.name, job.name)
        for commit in project.commits.values():
            if commit.ref.startswith("feature/") and commit.ref != legacy:
                commit.title = COMMIT_TITLE
        if project.tags:
            first: SimTag = min(project.tags.values(), key=lambda t: t.created_at)
            project.tags[TAG_NAME] = SimTag(
                name=TAG_NAME,
                digest="sha256:" + "0" * 63 + "1",
                revision="0" * 64,
                total_size=first.total_size,
                created_at=first.created_at - 86_400,
                flavor=first.flavor,
            )


def hostile_trace(body: bytes) -> bytes:
    """``body`` (a log as ``/trace`` serves it) with :data:`CACHE_LINES` after the ``restore_cache`` section
    start and :data:`LOG_LINES` after the ``step_script`` one, each with that line's timestamp prefix."""
    return _insert(_insert(body, b":restore_cache", CACHE_LINES), b":step_script", LOG_LINES)


def _insert(body: bytes, section: bytes, lines: tuple[bytes, ...]) -> bytes:
    marker = body.find(section)
    if marker < 0:
        return body
    start = body.rfind(b"\n", 0, marker) + 1
    end = body.find(b"\n", marker)
    if end < 0:
        return body
    line = body[start:end]
    prefix = line[: line.find(b" 00O ") + 5] if b" 00O " in line[:40] else b""
    extra = b"".join(prefix + text + b"\n" for text in lines)
    return body[: end + 1] + extra + body[end + 1 :]

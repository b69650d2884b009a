"""Renderers for criteria reports and comparisons: ``table`` (rich), ``json``, ``markdown`` and ``junit`` (XML).

Every renderer returns a string (the commands print it), so tests and the TUI can use them directly.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Literal

from cidash.compare import Comparison, ComparisonRow
from cidash.criteria import CriteriaReport, CriterionResult
from cidash.formatting import fmt_pct, fmt_result, fmt_value, tidy
from cidash.textsafe import clean, md_cell, md_code, xml_text

if TYPE_CHECKING:
    from rich.console import Console

CheckFormat = Literal["table", "json", "markdown", "junit"]
CHECK_FORMATS: tuple[str, ...] = ("table", "json", "markdown", "junit")
COMPARE_FORMATS: tuple[str, ...] = ("table", "json", "markdown")

STATUS_LABEL = {"pass": "PASS", "fail": "FAIL", "no_data": "NO DATA"}
_STATUS_STYLE = {"pass": "bold green", "fail": "bold red", "no_data": "yellow"}
_VERDICT_STYLE = {"PASS": "bold green", "FAIL": "bold red", "not enough data": "yellow"}


def _measured(value: float | None, unit: str) -> str:
    """A measured value in a column of them: one decimal kept for seconds and MB (``529.0 s / 608.2 s``, not
    ``529 s / 608.2 s``; ``100.0 %`` next to ``95.7 %``), the dashboard's formatters; an en dash for no value."""
    if value is None:
        return "–"
    return fmt_pct(value) if unit == "%" else fmt_value(value, unit, column=True)


def _value(c: CriterionResult) -> str:
    """A criterion's value as the dashboard shows it (``1 file``, ``41.2 % faster``, ``214.4 MB``): one
    formatter for every view, so the Health tab and ``check`` print the same words; an en dash for no value."""
    return "–" if c.value is None else fmt_result(c.value, c.unit)


def _target(c: CriterionResult) -> str:
    return f"{c.comparator} {fmt_value(c.target, c.unit)}"


def _text(buf: io.StringIO) -> str:
    """What the console wrote, without the padding rich adds to the table width: a piped report has no
    trailing blanks (its title line was padded to 120 columns)."""
    return "".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines())


def _console(width: int, color: bool) -> tuple[io.StringIO, Console]:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width,
        force_terminal=color,
        color_system="standard" if color else None,
        no_color=not color,
        highlight=False,
        emoji=False,
        markup=False,
        soft_wrap=False,
    )
    return buf, console


# ---------------------------------------------------------------------------------------------------------------
# Criteria
# ---------------------------------------------------------------------------------------------------------------


def criteria_json(report: CriteriaReport, *, strict: bool = False) -> str:
    return json.dumps(tidy(report.as_dict(strict=strict)), indent=2, sort_keys=False) + "\n"


def criteria_markdown(report: CriteriaReport, *, strict: bool = False) -> str:
    verdict = "all criteria pass" if report.ok(strict=True) else ("OK" if report.ok(strict=strict) else "FAILING")
    lines = [
        f"### cidash check: {md_cell(report.project)} — {verdict}",
        "",
        "| criterion | status | value | target | n | evidence |",
        "|---|---|---|---|---|---|",
    ]
    for c in report.criteria:
        lines.append(
            f"| {md_cell(c.title)} (`{c.id}`) | **{STATUS_LABEL[c.status]}** | "
            f"{md_cell(_value(c))} | {md_cell(_target(c))} | {c.n} | {md_cell(c.evidence)} |"
        )
    lines += ["", f"_Period: {md_cell(report.period)}. MB = 10^6 bytes._", ""]
    return "\n".join(lines)


def criteria_junit(report: CriteriaReport) -> str:
    """JUnit XML: one testcase per criterion; FAIL is a ``<failure>``, NO DATA a ``<skipped>``."""
    suite = ET.Element(
        "testsuite",
        name=xml_text(f"cidash criteria: {report.project}"),
        tests=str(len(report.criteria)),
        failures=str(sum(c.status == "fail" for c in report.criteria)),
        skipped=str(sum(c.status == "no_data" for c in report.criteria)),
        errors="0",
        timestamp=report.generated_at.isoformat(),
    )
    for c in report.criteria:
        case = ET.SubElement(suite, "testcase", classname="cidash.criteria", name=c.id)
        text = xml_text(f"{c.title}: value {_value(c)}, target {_target(c)}, n={c.n}. {c.evidence}")
        if c.status == "fail":
            ET.SubElement(case, "failure", message=xml_text(c.evidence), type="criterion_failed").text = text
        elif c.status == "no_data":
            ET.SubElement(case, "skipped", message=xml_text(f"no data: {c.evidence}"))
        ET.SubElement(case, "system-out").text = text
    root = ET.Element("testsuites", name="cidash")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def criteria_table(report: CriteriaReport, *, strict: bool = False, width: int = 120, color: bool = False) -> str:
    from rich.table import Table
    from rich.text import Text

    buf, console = _console(width, color)
    table = Table(
        title=Text(clean(f"cidash check: {report.project}")), title_justify="left", expand=False, show_lines=False
    )
    table.add_column("criterion", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("target", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("evidence", overflow="fold")
    for c in report.criteria:
        table.add_row(
            c.id,
            Text(STATUS_LABEL[c.status], style=_STATUS_STYLE[c.status]),
            _value(c),
            _target(c),
            str(c.n),
            Text(clean(c.evidence)),
        )
    console.print(table)
    passed = sum(c.status == "pass" for c in report.criteria)
    failed = sum(c.status == "fail" for c in report.criteria)
    missing = sum(c.status == "no_data" for c in report.criteria)
    console.print(
        f"{passed} pass, {failed} fail, {missing} no data — {'OK' if report.ok(strict=strict) else 'FAILING'}. "
        "MB = 10^6 bytes."
    )
    console.print(Text(clean(f"Period: {report.period}.")))
    return _text(buf)


def render_criteria(
    report: CriteriaReport, fmt: str, *, strict: bool = False, width: int = 120, color: bool = False
) -> str:
    if fmt == "json":
        return criteria_json(report, strict=strict)
    if fmt == "markdown":
        return criteria_markdown(report, strict=strict)
    if fmt == "junit":
        return criteria_junit(report)
    return criteria_table(report, strict=strict, width=width, color=color)


# ---------------------------------------------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------------------------------------------


def _cells(r: ComparisonRow) -> tuple[str, str, str, str, str, str, str]:
    """baseline, candidate (median / p90 or value), n, change, CI, verdict, note."""
    if r.kind == "distribution":
        b = r.baseline
        c = r.candidate
        base = f"{_measured(b.median if b else None, 's')} / {_measured(b.p90 if b else None, 's')}"
        cand = f"{_measured(c.median if c else None, 's')} / {_measured(c.p90 if c else None, 's')}"
    else:
        base = _measured(r.baseline_value, r.unit)
        cand = _measured(r.candidate_value, r.unit)
    change = r.change_text(1)
    ci = "–" if r.ci_low_pct is None or r.ci_high_pct is None else f"[{r.ci_low_pct:+.1f} %, {r.ci_high_pct:+.1f} %]"
    return base, cand, f"{r.n_baseline}/{r.n_candidate}", change, ci, r.verdict or "", r.note


def comparison_json(cmp: Comparison) -> str:
    return json.dumps(tidy(cmp.as_dict()), indent=2) + "\n"


def comparison_markdown(cmp: Comparison) -> str:
    lines = [
        f"### cidash compare: {md_cell(cmp.project)}",
        "",
        f"Baseline {md_code(cmp.baseline.text)} ({md_cell(cmp.baseline.describe())}, {cmp.baseline_pipelines} "
        f"pipelines) vs candidate {md_code(cmp.candidate.text)} ({md_cell(cmp.candidate.describe())}, "
        f"{cmp.candidate_pipelines} pipelines).",
        "",
    ]
    verdicts = [r for r in cmp.rows if r.verdict]
    for r in verdicts:
        lines.append(f"- **{md_cell(r.headline())}**")
    lines += [
        "",
        "| metric | baseline (median / p90) | candidate (median / p90) | n | change | 95 % CI | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in cmp.rows:
        cells = (r.title, *_cells(r)[:6])
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    lines += ["", f"<sub>{md_cell(cmp.methods())}</sub>", ""]
    return "\n".join(lines)


def comparison_table(cmp: Comparison, *, width: int = 120, color: bool = False) -> str:
    from rich.table import Table
    from rich.text import Text

    buf, console = _console(width, color)
    table = Table(
        title=Text(
            clean(
                f"cidash compare: {cmp.project}: {cmp.baseline.text} ({cmp.baseline_pipelines} pipelines) -> "
                f"{cmp.candidate.text} ({cmp.candidate_pipelines} pipelines)"
            )
        ),
        title_justify="left",
    )
    for name, justify in (
        ("metric", "left"),
        ("baseline med / p90", "right"),
        ("candidate med / p90", "right"),
        ("n", "right"),
        ("change", "right"),
        ("95 % CI", "right"),
        ("verdict", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "metric")  # type: ignore[arg-type]
    for r in cmp.rows:
        base, cand, n, change, ci, verdict, _ = _cells(r)
        table.add_row(
            Text(clean(r.title)), base, cand, n, change, ci, Text(verdict, style=_VERDICT_STYLE.get(verdict, ""))
        )
    console.print(table)
    for r in cmp.rows:
        if r.verdict:
            console.print(Text(clean(r.headline())))
    console.print(Text(clean(cmp.methods())))
    return _text(buf)


def render_comparison(cmp: Comparison, fmt: str, *, width: int = 120, color: bool = False) -> str:
    if fmt == "json":
        return comparison_json(cmp)
    if fmt == "markdown":
        return comparison_markdown(cmp)
    return comparison_table(cmp, width=width, color=color)

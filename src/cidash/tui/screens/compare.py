"""Compare: baseline vs candidate SPECs (preset: before/after the migration), table + verdicts, Markdown export."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Static

from cidash.textsafe import clean
from cidash.tui.screens.base import TabView, plural, texts
from cidash.tui.widgets.table import NavTable

#: (label, width): the longest metric title is 33 cells, a change with its interval 18, a verdict 15; all six fit
#: 120 columns, the first three 80.
COLUMNS = (
    ("Metric", 33),
    ("Change [95 % CI]", 18),
    ("Verdict", 15),
    ("Baseline p50/p90", 17),
    ("Candidate p50/p90", 18),
    ("n", 7),
)

VERDICT_STYLES = {"PASS": "bold green", "FAIL": "bold red", "not enough data": "yellow"}


if TYPE_CHECKING:
    from cidash.compare import Comparison


class CompareTab(TabView):
    def __init__(self) -> None:
        super().__init__(id="compare-view")
        self.comparison: Comparison | None = None
        self._specs = ("", "")  # the SPECs until the inputs are mounted

    def compose(self) -> ComposeResult:
        from cidash.specs import SPEC_HELP

        with Horizontal(id="compare-form"):
            with Horizontal(classes="spec-row"):
                yield Static("Baseline ", classes="spec-label")
                yield Input(placeholder="baseline SPEC", id="baseline-spec", compact=True)
            with Horizontal(classes="spec-row"):
                yield Static("Candidate ", classes="spec-label")
                yield Input(placeholder="candidate SPEC", id="candidate-spec", compact=True)
        with Horizontal(id="compare-buttons"):
            yield Button("Compare", id="compare-run", variant="primary", compact=True)
            yield Button("Migration", id="compare-preset", compact=True)
            yield Static(" Enter in a box compares · Esc leaves it", id="compare-hint")
        yield Static(f"[dim]{SPEC_HELP}[/]", id="compare-help")
        yield NavTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="compare-summary")

    def on_mount(self) -> None:
        # the telling columns first: at 80 columns metric, change and verdict stay in view (Metric frozen)
        # fixed widths: auto-sized columns re-measured after the rows arrive left the header and the first row
        # drawn at their old widths (at 80 columns, with the first column frozen)
        table = self.query_one("#compare-table", DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width)
        self.ready()

    def set_specs(self, baseline: str, candidate: str) -> None:
        self._specs = (baseline, candidate)
        self.when_ready("specs", partial(self._set_inputs, baseline, candidate))

    def _set_inputs(self, baseline: str, candidate: str) -> None:
        self.query_one("#baseline-spec", Input).value = baseline
        self.query_one("#candidate-spec", Input).value = candidate

    def specs(self) -> tuple[str, str]:
        if not self.view_ready:
            return self._specs
        return self.query_one("#baseline-spec", Input).value, self.query_one("#candidate-spec", Input).value

    def show_progress(self, text: str) -> None:
        """A line in place of the summary while a comparison runs."""
        self.when_ready("summary", lambda: self.query_one("#compare-summary", Static).update(Text(clean(text))))

    def show(self, comp: Comparison) -> None:
        self.comparison = comp
        self.when_ready("show", partial(self._show, comp))

    def _show(self, comp: Comparison) -> None:
        from cidash.tui.data import comparison_cells

        table = self.query_one("#compare-table", DataTable)
        table.clear()
        for r in comp.rows:
            metric, base, cand, n, change, verdict = comparison_cells(r)
            verdict_cell = Text(clean(verdict), style=VERDICT_STYLES.get(verdict, ""))
            table.add_row(*texts((metric, change)), verdict_cell, *texts((base, cand, n)))
        passed = sum(r.verdict == "PASS" for r in comp.rows)
        failed = sum(r.verdict == "FAIL" for r in comp.rows)
        self.query_one("#compare-summary", Static).update(
            Text.assemble(
                (clean(comp.baseline.describe()), "bold"),
                f" ({plural(comp.baseline_pipelines, 'pipeline')}) → ",
                (clean(comp.candidate.describe()), "bold"),
                f" ({plural(comp.candidate_pipelines, 'pipeline')}): {passed} PASS, {failed} FAIL",
                " · e exports Markdown\n",
                (clean(comp.methods()), "dim"),
            )
        )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "compare-preset":
            self.dash.compare_preset()
        elif event.button.id == "compare-run":
            self.dash.run_compare(*self.specs())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dash.run_compare(*self.specs())

"""An evaluated criterion and the report of all of them (the stable JSON shape), and their details in words."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cidash.specs import short_digest

Status = Literal["pass", "fail", "no_data"]


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """One evaluated criterion. ``comparator`` reads "value <comparator> target passes"."""

    id: str
    title: str
    status: Status
    value: float | None
    target: float
    unit: str
    n: int
    evidence: str
    comparator: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape (``details`` holds criterion-specific extras)."""
        return {
            "id": self.id,
            "status": self.status,
            "value": None if self.value is None else round(self.value, 3),
            "target": self.target,
            "unit": self.unit,
            "n": self.n,
            "evidence": self.evidence,
            "title": self.title,
            "comparator": self.comparator,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class CriteriaReport:
    project: str
    generated_at: datetime
    criteria: tuple[CriterionResult, ...]
    period: str  # which split / window the current-state criteria looked at
    #: Findings that are not criteria, one sentence each (``cidash check`` prints them on stderr).
    warnings: tuple[str, ...] = ()

    @property
    def any_fail(self) -> bool:
        return any(c.status == "fail" for c in self.criteria)

    @property
    def any_no_data(self) -> bool:
        return any(c.status == "no_data" for c in self.criteria)

    def ok(self, *, strict: bool = False) -> bool:
        """No criterion fails (and, when ``strict``, none lacks data)."""
        return not self.any_fail and not (strict and self.any_no_data)

    def exit_code(self, *, strict: bool = False) -> int:
        return 0 if self.ok(strict=strict) else 1

    def as_dict(self, *, strict: bool = False) -> dict[str, Any]:
        return {
            "ok": self.ok(strict=strict),
            "criteria": [c.as_dict() for c in self.criteria],
            "project": self.project,
            "generated_at": self.generated_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


#: details key -> (label, unit) for the evidence views; keys not listed are not shown there.
DETAIL_LABELS: dict[str, tuple[str, str]] = {
    "tag": ("Image tag", ""),
    "digest": ("Image digest", ""),
    "n_baseline": ("Baseline job start-ups", ""),
    "n_candidate": ("Candidate job start-ups", ""),
    "baseline_median": ("Baseline median start-up", "s"),
    "candidate_median": ("Candidate median start-up", "s"),
    "change_pct": ("Change of the median", "%"),
    "first_attempt_successes": ("Pipelines whose first attempt succeeded", ""),
    "eventual_rate": ("Pipelines that succeeded eventually", "%"),
    "failures_script": ("Failed attempts: script", ""),
    "failures_infrastructure": ("Failed attempts: infrastructure", ""),
    "failures_other": ("Failed attempts: other", ""),
    "default_key_events": ("Restores on a default key (no key:files found)", ""),
    "unchanged_key_events": ("Key unchanged while a critical file changed", ""),
    "config_writers": ("Writer jobs without a resource_group sharing a key", ""),
    "observed_overlaps": ("Overlapping uploads observed", ""),
}


def _detail_value(value: Any, unit: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f} {unit}".rstrip()
    if isinstance(value, int):
        return f"{value} {unit}".rstrip()
    text = str(value)
    return short_digest(text) if text.startswith("sha256:") else text


def detail_rows(details: dict[str, Any]) -> list[tuple[str, str]]:
    """A criterion's ``details`` as labelled rows in words, for the evidence views: ``("Baseline median start-up",
    "26.8 s")``, the bootstrap interval as one row (``"95 % interval of the change", "-42.0 % to -40.1 %"``).
    Internal keys (the split, already in the sentence) are left out."""
    rows: list[tuple[str, str]] = []
    for key, (label, unit) in DETAIL_LABELS.items():
        if key in details and details[key] is not None:
            value = details[key]
            text = f"{value:+.1f} %" if key == "change_pct" and isinstance(value, float) else _detail_value(value, unit)
            rows.append((label, text))
        if key == "change_pct" and details.get("ci_low_pct") is not None and details.get("ci_high_pct") is not None:
            level = details.get("confidence") or 0.95
            rows.append(
                (
                    f"{level * 100:.0f} % interval of the change",
                    f"{details['ci_low_pct']:+.1f} % to {details['ci_high_pct']:+.1f} %",
                )
            )
    return rows

"""The Health table as the dashboard shows it, and its cache: the last computed Health, shown at once when the
dashboard starts (a warm start) while the criteria are computed again.

Light on purpose (no core module beyond the criteria registry, imported only for a cache from before short
titles): the App imports it before its first paint; :mod:`cidash.tui.data` computes a :class:`Health` and
re-exports these names."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from cidash.config import Config
    from cidash.models import Project
    from cidash.store import Store


@dataclass(frozen=True)
class HealthRow:
    """One criterion as the Health screen shows it (all strings formatted, plus the sparkline values)."""

    id: str
    title: str
    status: str  # pass | fail | no_data
    target: str
    value: str
    baseline: str
    change: str
    evidence: str
    n: int
    series: tuple[float | None, ...]
    series_unit: str = ""
    short_title: str = ""  # the criterion's title in a narrow table

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "series": list(self.series)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HealthRow:
        row = cls(**{**d, "series": tuple(d.get("series", ()))})
        if "short_title" not in d:  # a cache from before short titles
            from cidash.criteria import REGISTRY

            if (crit := REGISTRY.get(row.id)) is not None:
                row = replace(row, short_title=crit.short_title)
        return row


@dataclass(frozen=True)
class Health:
    project: str
    generated_at: datetime
    ok: bool
    period: str
    rows: tuple[HealthRow, ...]
    counts: dict[str, int] = field(default_factory=dict)
    #: The project's last completed sync when the store was read (None: never synced, or a cache from before this
    #: was recorded): a cached Health is current only while the store's last sync is still this one.
    synced_at: datetime | None = None
    #: False: the verdicts, values, targets and evidence only (:func:`cidash.tui.data.first_health`, a start with no
    #: cached Health): the baseline and change cells wait, the series are empty. Never cached.
    complete: bool = True

    @property
    def verdict(self) -> str:
        fails = [r.title for r in self.rows if r.status == "fail"]
        no_data = sum(r.status == "no_data" for r in self.rows)
        if fails:
            return f"FAIL: {len(fails)} of {len(self.rows)} criteria fail ({', '.join(fails)})"
        if no_data:
            return f"PASS with gaps: no criterion fails, {no_data} without data"
        return f"PASS: all {len(self.rows)} criteria pass"

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "generated_at": self.generated_at.isoformat(),
            "ok": self.ok,
            "period": self.period,
            "rows": [r.as_dict() for r in self.rows],
            "counts": self.counts,
            "synced_at": self.synced_at.isoformat() if self.synced_at is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Health:
        return cls(
            d["project"],
            datetime.fromisoformat(d["generated_at"]),
            bool(d["ok"]),
            d["period"],
            tuple(HealthRow.from_dict(r) for r in d["rows"]),
            dict(d.get("counts", {})),
            datetime.fromisoformat(d["synced_at"]) if d.get("synced_at") else None,
        )

    def current_for(self, last_sync: datetime | None) -> bool | None:
        """Whether this Health was computed from the store as it is (True), from an older state (False: the store
        was synced since), or unknown (None: a cache without the sync it came from, or a store never synced)."""
        if self.synced_at is None or last_sync is None:
            return None
        return self.synced_at == last_sync


# -- the cached Health (shown at start before the first computation finishes) -----------------------------------


def dashboard_project(projects: Sequence[Project], config: Config) -> Project | None:
    """The project the dashboard opens when none is named: the first configured project the store holds, else
    the store's first."""
    chosen = None
    if config.gitlab.projects:
        chosen = next((p for p in projects if p.path in config.gitlab.projects), None)
    if chosen is None and projects:
        chosen = projects[0]
    return chosen


def default_cache_dir() -> Path:
    """Where the dashboard keeps its cache (``cidash tui`` and ``cidash sync`` agree on it)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("cidash"))


def health_cache_path(cache_dir: Path, store_path: Path, project_id: int) -> Path:
    digest = hashlib.sha1(str(store_path.resolve()).encode(), usedforsecurity=False).hexdigest()[:12]
    return cache_dir / f"health-{digest}-{project_id}.json"


def save_health(path: Path, health: Health) -> None:
    if not health.complete:
        return  # a first Health without its baselines and series is never what a start shows as cached
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(health.as_dict()), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a cache: losing it only costs a slower next start


def load_health(path: Path) -> Health | None:
    try:
        return Health.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keep_health_warm(
    store: Store,
    config: Config,
    synced: Sequence[tuple[Project, bool]],
    previous: Mapping[int, datetime | None],
    now: datetime,
    *,
    cache_dir: Path | None = None,
) -> list[Project]:
    """After ``cidash sync``: leave the cached Health (what the dashboard shows at once when it starts) as of the
    store now, for the project the dashboard opens first and for every project whose Health is cached already,
    so the next ``cidash`` starts warm and can say its Health is current.

    ``synced``: (project, whether the sync changed anything in the store); ``previous``: each project's last
    completed sync before this one. A project this sync changed nothing in keeps its cached Health, marked as of
    this sync, if that Health was as of the previous one; otherwise its Health is computed again
    (:func:`load_dashboard`, the dashboard worker's own computation). Returns the projects computed again."""
    cache_dir = cache_dir or default_cache_dir()
    first = dashboard_project(store.projects(), config)
    computed = []
    for project, changed in synced:
        path = health_cache_path(cache_dir, store.path, project.id)
        cached = load_health(path)
        if cached is None and (first is None or project.id != first.id):
            continue  # a project the dashboard does not open first and never showed
        last_sync = store.last_sync(project.id)
        if not changed and cached is not None and cached.current_for(previous.get(project.id)):
            save_health(path, replace(cached, synced_at=last_sync))
            continue
        from cidash.tui.data import load_dashboard  # the core's load: only when a Health is computed

        _, health = load_dashboard(store, config, project, now)
        save_health(path, health)
        computed.append(project)
    return computed

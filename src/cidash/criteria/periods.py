"""The baseline and candidate periods the criteria read: configured SPECs, the configured migration, or the
CI-image digest change :func:`migration_change` picks (see :mod:`cidash.criteria`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cidash.config import Config
from cidash.metrics import (
    Dataset,
    DigestChange,
    DigestSize,
    ci_image_jobs,
    digest_sizes,
    image_digest_changes,
    size_of_digest,
    tag_sizes,
)
from cidash.models import MB
from cidash.specs import parse_migration, parse_spec, short_digest


@dataclass(frozen=True)
class Periods:
    """The baseline and candidate slices the criteria read, and how they were chosen."""

    mode: Literal["specs", "digest", "configured", "window"]
    ref: str | None
    baseline: Dataset | None
    candidate: Dataset
    description: str
    split_at: datetime | None = None
    short: str = ""  # the candidate period in a few words, for evidence sentences
    split_rule: str = ""  # digest mode: the ChangeKind of the change the split used


def _day(d: datetime) -> str:
    return d.astimezone(UTC).date().isoformat()


def ci_image_hint(ds: Dataset, config: Config) -> str | None:
    """The CI image's registry path: ``[image] repository``, else ``<project path>/ci`` (sync's default)."""
    if config.image.repository:
        return config.image.repository
    return f"{ds.project.path}/ci" if ds.project else None


def criteria_ref(ds: Dataset, config: Config) -> str:
    return config.criteria.ref or ds.default_ref()


#: A digest change whose image size moves by less than this fraction is a rebuild, not a migration.
REBUILD_SIZE_TOLERANCE = 0.10


ChangeKind = Literal["migration", "unknown", "same_tag", "rebuild"]


#: The order in which the split prefers digest changes (the most recent change of the first kind found wins).
CHANGE_PREFERENCE: tuple[ChangeKind, ...] = ("migration", "unknown", "same_tag", "rebuild")


@dataclass(frozen=True, slots=True)
class ClassifiedChange:
    """A CI-image digest change and what the stored sizes say about it.

    ``kind``: ``migration`` (both sizes known, moved by >= :data:`REBUILD_SIZE_TOLERANCE`), ``rebuild`` (both
    known, moved less), ``same_tag`` (a size unknown, both sides ran the same registry tag: a new push of one tag)
    or ``unknown`` (a size unknown, the jobs moved to another tag or named none).
    """

    change: DigestChange
    kind: ChangeKind
    old_size: DigestSize | None
    new_size: DigestSize | None


def classify_change(change: DigestChange, exact: dict[str, int], by_tag: dict[str, int]) -> ClassifiedChange:
    """Sizes come from the tag history for the digest itself; a digest the registry no longer lists (its tag was
    overwritten or deleted) takes the size of the tag its jobs ran, unless both sides ran the same tag (that
    estimate would make every new push of a tag look like a rebuild)."""
    tags: dict[str, int] = {} if change.same_tag else by_tag
    old = size_of_digest(change.old, change.old_tag, exact, tags)
    new = size_of_digest(change.new, change.new_tag, exact, tags)
    if old is not None and new is not None:
        moved = abs(new.size_bytes - old.size_bytes) / old.size_bytes
        return ClassifiedChange(change, "migration" if moved >= REBUILD_SIZE_TOLERANCE else "rebuild", old, new)
    return ClassifiedChange(change, "same_tag" if change.same_tag else "unknown", old, new)


def migration_change(changes: list[ClassifiedChange]) -> tuple[ClassifiedChange, int]:
    """The digest change the split uses, and how many later changes it passed over.

    The most recent ``migration``; else the most recent ``unknown``; else the most recent ``same_tag``; else (all
    rebuilds) the most recent change. A change of unknown size never beats a known >= 10 % size change, so the
    verdict does not move when a registry cleanup forgets an old image's size.
    """
    for kind in CHANGE_PREFERENCE:
        for index in range(len(changes) - 1, -1, -1):
            if changes[index].kind == kind:
                return changes[index], len(changes) - 1 - index
    raise ValueError("no digest change")


def _size(size: DigestSize | None) -> str:
    if size is None:
        return "size unknown"
    if size.exact:
        return f"{size.size_bytes / MB:.1f} MB"
    return f"{size.size_bytes / MB:.1f} MB as tag {size.via_tag}"


_WHY: dict[ChangeKind, str] = {
    "migration": "the most recent change whose image size moved by 10 % or more",
    "unknown": "the most recent change to another image tag, as no change with both sizes known moved by 10 % or "
    "more (set [criteria] migration if this is not the migration)",
    "same_tag": "the most recent new push of one tag, as no change moved to another tag or by 10 % or more "
    "(set [criteria] migration if this is not the migration)",
    "rebuild": "the most recent change, as every change kept a similar size",
}


def _configured_split(on_ref: Dataset, ds: Dataset, config: Config, ref: str) -> tuple[datetime | None, str]:
    """The split ``[criteria] migration`` names, and its description (split None: the image never ran)."""
    spec = parse_migration(config.criteria.migration)
    if spec.at is not None:
        return spec.at, f"split at the configured [criteria] migration = {spec.text} on {ref}"
    wanted = spec.digest or ""
    for job, digest in ci_image_jobs(on_ref, ci_image_hint(ds, config)):
        if digest.startswith(wanted):
            at = next((p.created_at for p in on_ref.pipelines if p.id == job.pipeline_id), job.created_at)
            return at, (
                f"split at the configured [criteria] migration = {spec.text}: its first job on {ref} was "
                f"{job.id}, in a pipeline created on {_day(at)}"
            )
    return None, f"no job on {ref} ran the configured [criteria] migration = {spec.text}"


def choose_periods(ds: Dataset, config: Config, now: datetime) -> Periods:
    """Baseline and candidate as the module docstring describes. Raises UsageError for a malformed SPEC.

    Only the history that existed at ``now`` counts (:meth:`Dataset.as_of`)."""
    ds = ds.as_of(now)
    c = config.criteria
    ref = criteria_ref(ds, config)
    window = timedelta(days=c.window_days)
    if c.baseline and c.candidate:
        b, k = parse_spec(c.baseline), parse_spec(c.candidate)
        return Periods(
            "specs",
            None,
            ds.select(b),
            ds.select(k),
            f"configured baseline `{b.text}` vs candidate `{k.text}`",
            short=f"in candidate `{k.text}`",
        )
    # the periods are sliced from ``ds`` on the ref and between their bounds at once; the whole ref only when a
    # choice reads it
    if c.migration:
        split, text = _configured_split(ds.on_ref(ref), ds, config, ref)
        if split is not None and split <= now:
            return Periods(
                "configured",
                ref,
                ds.on_ref_between(ref, split - window, split),
                ds.on_ref_between(ref, max(split, now - window), None),
                text,
                split,
                short=f"on {ref} since {_day(max(split, now - window))}",
            )
        if split is not None:
            text = f"the configured [criteria] migration = {c.migration} is after {_day(now)}"
        return Periods(
            "window",
            ref,
            None,
            ds.on_ref_between(ref, now - window, None),
            f"{text}: the last {c.window_days} days on {ref}, no baseline",
            short=f"on {ref} in the last {c.window_days} days",
        )
    hint = ci_image_hint(ds, config)
    history = ds.image_history if ds.image_history is not None and ds.image_history.fits(ref, hint, now) else None
    # A windowed dataset (the periods only) carries the whole history's digest changes, found in the database.
    changes = list(history.changes) if history is not None else image_digest_changes(ds.on_ref(ref), hint)
    if changes:
        exact, by_tag = digest_sizes(ds), tag_sizes(ds, hint)
        classified = [classify_change(ch, exact, by_tag) for ch in changes]
        chosen, later = migration_change(classified)
        change = chosen.change
        # Split at the creation of the pipeline whose job first ran the new digest, so that pipeline counts.
        if history is not None:
            split = history.split_at.get(change.pipeline_id, change.at)
        else:
            # (the change's pipeline is on the ref: its job is in ``ds.on_ref(ref)``)
            split = next((p.created_at for p in ds.pipelines if p.id == change.pipeline_id and p.ref == ref), change.at)
        baseline = ds.on_ref_between(ref, split - window, split)
        candidate = ds.on_ref_between(ref, max(split, now - window), None)
        skipped = (
            f"; the {later} later change{'s stay' if later != 1 else ' stays'} in the candidate as "
            f"{'rebuilds' if later != 1 else 'a rebuild'}"
            if later
            else ""
        )
        among = f"of {len(changes)} digest changes, " if len(changes) > 1 else ""
        return Periods(
            "digest",
            ref,
            baseline,
            candidate,
            f"split at the CI-image digest change on {ref} on {_day(split)} "
            f"({short_digest(change.old)} -> {short_digest(change.new)}, {_size(chosen.old_size)} -> "
            f"{_size(chosen.new_size)}, job {change.job_id}): {among}{_WHY[chosen.kind]}{skipped}",
            split,
            short=f"on {ref} since {_day(max(split, now - window))}",
            split_rule=chosen.kind,
        )
    return Periods(
        "window",
        ref,
        None,
        ds.on_ref_between(ref, now - window, None),
        f"no CI-image digest change on {ref}: the last {c.window_days} days",
        short=f"on {ref} in the last {c.window_days} days",
    )

"""The CI image: sizes from the tag history, which jobs ran it, and the changes of its digest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cidash.metrics.model import Dataset, DigestChange, job_image_digest, normalize_digest, plausible_size
from cidash.models import ImageRef, Job


@dataclass(frozen=True, slots=True)
class ImageSizePoint:
    tag: str
    digest: str | None
    size_bytes: int
    created_at: datetime | None
    repository: str


def image_size_history(ds: Dataset, repository: str | None = None) -> list[ImageSizePoint]:
    """Image tags with a known, plausible size (:func:`plausible_size`), oldest first; optionally one repository
    only. A negative or absurd size never becomes a point (it would pass ``image_size`` at -0.0 MB)."""
    points = [
        ImageSizePoint(t.name, t.digest, t.total_size, t.created_at, t.repository)
        for t in ds.image_tags
        if t.total_size is not None
        and plausible_size(t.total_size)
        and (repository is None or t.repository == repository)
    ]
    points.sort(key=lambda p: (p.created_at is None, p.created_at or datetime.min, p.tag))
    return points


def image_tag_of(name: str) -> str | None:
    """``registry:5000/group/app/ci:alpine-2@sha256:...`` -> ``alpine-2``; None when the name has no tag."""
    name = name.split("@", 1)[0]
    _, sep, tail = name.rpartition(":")
    return tail if sep and "/" not in tail and tail else None


@dataclass(frozen=True, slots=True)
class DigestSize:
    """What cidash knows of one image digest's size: ``exact`` when the tag history recorded this digest with a
    size, else estimated from the newest sized push of the tag its jobs ran (``via_tag``)."""

    size_bytes: int
    exact: bool
    via_tag: str | None = None


def digest_sizes(ds: Dataset) -> dict[str, int]:
    """Every plausible size the tag history ever recorded per digest (a tag overwritten or deleted since keeps
    its row in the store, so the sizes of images the registry no longer lists stay known)."""
    out: dict[str, int] = {}
    for t in ds.image_tags:
        if t.digest and t.total_size is not None and plausible_size(t.total_size):
            out[t.digest] = t.total_size
    return out


def tag_sizes(ds: Dataset, repository_hint: str | None = None) -> dict[str, int]:
    """Per tag name, the size of its newest sized push (tags of repositories containing ``repository_hint``)."""
    rows = [
        t
        for t in ds.image_tags
        if t.total_size is not None
        and plausible_size(t.total_size)
        and (not repository_hint or repository_hint in t.repository)
    ]
    rows.sort(key=lambda t: (t.created_at is not None, t.created_at or datetime.min, t.digest or ""))
    return {t.name: t.total_size for t in rows if t.total_size is not None}


def size_of_digest(
    digest: str, tag: str | None, exact: Mapping[str, int], by_tag: Mapping[str, int]
) -> DigestSize | None:
    """``digest``'s size from the tag history, else the size of the tag its jobs ran (job facts), else None."""
    if digest in exact:
        return DigestSize(exact[digest], True)
    if tag is not None and tag in by_tag:
        return DigestSize(by_tag[tag], False, tag)
    return None


def image_repository_of(name: str) -> str:
    """``registry:5000/group/app/ci:tag@sha256:...`` -> ``registry:5000/group/app/ci`` (tag and digest removed)."""
    name = name.split("@", 1)[0]
    head, sep, tail = name.rpartition(":")
    return head if sep and "/" not in tail else name


def _image_runs(ds: Dataset) -> Iterator[tuple[Job, str, str]]:
    """(job, image repository, digest) for each started job of ``ds`` whose log named its image with a digest, in
    the order of ``ds.jobs``."""
    # a few images for many jobs: each parsed once, found by identity (a window's jobs share their image's
    # object; an ImageRef's hash would be computed on every lookup), by value for the other objects
    by_id: dict[int, tuple[ImageRef, str, str | None]] = {}
    by_value: dict[ImageRef, tuple[ImageRef, str, str | None]] = {}
    for j in ds.jobs:
        facts = ds.facts.get(j.id)
        if facts is None or facts.image is None or j.started_at is None:
            continue
        image = facts.image
        parsed = by_id.get(id(image))
        if parsed is None or parsed[0] is not image:
            parsed = by_value.get(image)
            if parsed is None:
                parsed = by_value[image] = (image, image_repository_of(image.name), normalize_digest(image.digest))
            by_id[id(image)] = (image, parsed[1], parsed[2])
        if parsed[2] is not None:
            yield j, parsed[1], parsed[2]


def ci_image_jobs(ds: Dataset, image_hint: str | None = None) -> list[tuple[Job, str]]:
    """(job, digest) for jobs that ran in the CI image, oldest first.

    The CI image is the one whose name contains ``image_hint`` (the registry repository path, e.g.
    ``platform/app/ci``; a renamed ``platform/app/ci-alpine`` still matches) when any job ran it, else the image
    most jobs ran in.
    """
    named = list(_image_runs(ds))
    if not named:
        return []
    chosen = [(j, d) for j, name, d in named if image_hint and image_hint in name]
    if not chosen:
        top = Counter(name for _, name, _ in named).most_common(1)[0][0]
        chosen = [(j, d) for j, name, d in named if name == top]
    chosen.sort(key=lambda jd: (jd[0].started_at or datetime.min, jd[0].id))
    return chosen


def _ci_image_uses(ds: Dataset, image_hint: str | None) -> dict[str, list[tuple[datetime, int] | int]]:
    """Per digest of the CI image (chosen as :func:`ci_image_jobs` chooses it): ``[jobs, first, newest]``, the
    first and newest job's ``(started_at, id)``; in the order the repositories were first seen among ``ds.jobs``.
    One pass, no list of jobs and no sort: the jobs are counted per object of image facts (a window's jobs share
    a few), which are then parsed and merged per repository and digest in the order of their first job (the
    order a merge job by job would see them in: ``tests/unit/test_metrics_props.py`` and
    ``test_metrics_one_pass.py``, shared image objects too)."""
    per_image: dict[int, list[Any]] = {}  # id(image) -> [image, jobs, first, newest] (the image kept: no id reused)
    facts_of = ds.facts.get
    for j in ds.jobs:
        facts = facts_of(j.id)
        if facts is None or facts.image is None or j.started_at is None:
            continue
        got = per_image.get(id(facts.image))
        order = (j.started_at, j.id)
        if got is None:
            per_image[id(facts.image)] = [facts.image, 1, order, order]
            continue
        got[1] += 1
        if order < got[2]:  # min() and max(), without their calls (100,000 jobs)
            got[2] = order
        elif order > got[3]:
            got[3] = order
    uses: dict[str, dict[str, list[Any]]] = {}  # repository -> digest -> [jobs, first, newest]
    parsed: dict[ImageRef, tuple[str, str | None]] = {}  # equal objects parsed once
    for image, count, first, newest in per_image.values():
        name_digest = parsed.get(image)
        if name_digest is None:
            name_digest = parsed[image] = (image_repository_of(image.name), normalize_digest(image.digest))
        name, digest = name_digest
        if digest is None:
            continue
        _add_uses(uses.setdefault(name, {}), digest, count, first, newest)
    if not uses:
        return {}
    chosen = [n for n in uses if image_hint and image_hint in n]
    if not chosen:  # the repository most jobs ran (ties: the first seen, as Counter.most_common keeps it)
        totals = {n: sum(u[0] for u in d.values()) for n, d in uses.items()}
        best = max(totals.values())
        chosen = [next(n for n, total in totals.items() if total == best)]
    out: dict[str, list[Any]] = {}
    for n in chosen:
        for digest, (count, first, newest) in uses[n].items():
            _add_uses(out, digest, count, first, newest)
    return out


def _add_uses(
    by_digest: dict[str, list[Any]], digest: str, count: int, first: tuple[datetime, int], newest: tuple[datetime, int]
) -> None:
    """Add ``count`` jobs, the first and newest at ``first`` and ``newest``, to ``by_digest[digest]``'s
    ``[jobs, first, newest]`` (a few calls: once per distinct image object and per digest)."""
    got = by_digest.get(digest)
    if got is None:
        by_digest[digest] = [count, first, newest]
    else:
        got[0] += count
        got[1] = min(got[1], first)
        got[2] = max(got[2], newest)


def last_ci_image_digest(ds: Dataset, image_hint: str | None = None) -> str | None:
    """The digest of the newest CI-image job (``ci_image_jobs(ds, image_hint)[-1][1]``, None without one): the
    same choice of the CI image, without building and sorting the list (the image-size criterion reads it)."""
    uses = _ci_image_uses(ds, image_hint)
    return max(uses, key=lambda d: uses[d][2]) if uses else None


def ci_image_digest_counts(ds: Dataset, image_hint: str | None = None) -> Counter[str]:
    """``Counter(d for _, d in ci_image_jobs(ds, image_hint))``, its digests in the same order (of their first
    job), so ``most_common`` breaks ties the same way; without building and sorting the list."""
    uses = _ci_image_uses(ds, image_hint)
    return Counter({d: int(uses[d][0]) for d in sorted(uses, key=lambda d: uses[d][1])})  # type: ignore[arg-type]


def image_digest_changes(ds: Dataset, image_hint: str | None = None) -> list[DigestChange]:
    """Every change of the CI image digest between consecutive jobs (by start time), oldest first, with the tag
    each side's jobs named (from their logs)."""
    changes = []
    previous: str | None = None
    previous_tag: str | None = None
    for j, digest in ci_image_jobs(ds, image_hint):
        facts = ds.facts.get(j.id)
        tag = image_tag_of(facts.image.name) if facts is not None and facts.image is not None else None
        if previous is not None and digest != previous:
            assert j.started_at is not None
            changes.append(DigestChange(j.started_at, j.id, j.pipeline_id, previous, digest, previous_tag, tag))
        previous, previous_tag = digest, tag
    return changes


def image_last_used(ds: Dataset) -> dict[str, datetime]:
    """Per image digest, when a job last started in it (from the jobs' logs): what "last seen" means for an
    image, rather than the last registry sync that listed its tag."""
    out: dict[str, datetime] = {}
    for j in ds.jobs:
        digest = job_image_digest(ds, j)
        if digest is None or j.started_at is None:
            continue
        if digest not in out or j.started_at > out[digest]:
            out[digest] = j.started_at
    return out

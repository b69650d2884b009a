"""Fault injection for the simulated GitLab: deterministic, per endpoint.

A :class:`FaultPlan` is a seed plus an ordered tuple of :class:`FaultRule`. For each request the server asks the
plan for a :class:`FaultDecision`; the first matching rule that *fires* decides. A rule matches when its
``endpoint`` pattern (``fnmatch`` style, ``*`` also matches ``/``) matches either the endpoint template
(``"GET /projects/:id/jobs/:job_id/trace"``) or the concrete request (``"GET /api/v4/projects/42/jobs/7/trace"``).
Whether a matching rule fires is decided by ``skip`` (let the first N matching requests through), ``first``
(fire on at most N requests), ``every`` (fire on every Nth match) and ``probability`` (drawn from a
``random.Random`` seeded with the plan's seed and the rule's index, so the same request order gives the same
faults).

Kinds of fault (fields of a rule; several may be combined):

- ``latency_ms`` / ``jitter_ms``: sleep before answering (jitter uniform in ``[0, jitter_ms]``);
- ``status``: answer with this status instead (429 adds ``Retry-After: retry_after``; 500/502/503 have
  GitLab-like bodies);
- ``reset``: send the headers and half the body, then reset the connection (RST);
- ``truncate_bytes``: serve only the first N bytes of the body (with a matching ``Content-Length``), as a runner
  that hit its log limit would;
- ``slow_bytes_per_s``: send the body in small chunks at this rate;
- ``redirect_to``: answer ``redirect_status`` (302) with ``Location: redirect_to`` instead, before authenticating
  (as a front-end proxy would); ``{path}`` in it becomes the request's path and query (e.g.
  ``"http://127.0.0.2:8080{path}"``: a redirect to another host);
- ``page_loop``: the answer's pagination points back at the same page (``X-Next-Page`` = ``X-Page``, the ``Link``
  ``rel="next"`` URL = this request's URL): an offset listing that never ends, or a keyset cursor that does not
  advance.

Example: the first three trace requests get 429, then everything works::

    FaultPlan(rules=(FaultRule(endpoint="*/trace", status=429, first=3),))
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One kind of misbehaviour for the requests whose endpoint matches ``endpoint``."""

    endpoint: str = "*"
    method: str | None = None  # None: any method
    status: int | None = None
    retry_after: float = 1.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    reset: bool = False
    truncate_bytes: int | None = None
    slow_bytes_per_s: float | None = None
    redirect_to: str | None = None
    redirect_status: int = 302
    page_loop: bool = False
    probability: float = 1.0
    first: int | None = None
    every: int | None = None
    skip: int = 0

    def matches(self, method: str, template: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        pattern = self.endpoint
        return (
            fnmatch.fnmatchcase(template, pattern)
            or fnmatch.fnmatchcase(f"{method} {template}", pattern)
            or fnmatch.fnmatchcase(path, pattern)
            or fnmatch.fnmatchcase(f"{method} {path}", pattern)
        )


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What the server does to one response. ``delay_s`` is the total sleep before answering."""

    delay_s: float = 0.0
    status: int | None = None
    retry_after: float = 1.0
    reset: bool = False
    truncate_bytes: int | None = None
    slow_bytes_per_s: float | None = None
    redirect_to: str | None = None
    redirect_status: int = 302
    page_loop: bool = False
    rule_index: int | None = None

    @property
    def is_noop(self) -> bool:
        return (
            self.delay_s == 0.0
            and self.status is None
            and not self.reset
            and self.truncate_bytes is None
            and self.slow_bytes_per_s is None
            and self.redirect_to is None
            and not self.page_loop
        )


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """A seed and the rules. ``FaultPlan()`` injects nothing."""

    rules: tuple[FaultRule, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        # be forgiving: FaultPlan(rules=[...]) works too
        object.__setattr__(self, "rules", tuple(self.rules))


@dataclass
class FaultState:
    """The mutable side of a plan: per-rule match counters and random streams."""

    plan: FaultPlan
    _matched: list[int] = field(default_factory=list)
    _fired: list[int] = field(default_factory=list)
    _rngs: list[random.Random] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        n = len(self.plan.rules)
        self._matched = [0] * n
        self._fired = [0] * n
        self._rngs = [random.Random(self.plan.seed * 1_000_003 + i) for i in range(n)]

    @property
    def fired(self) -> tuple[int, ...]:
        """How many times each rule fired, in rule order."""
        return tuple(self._fired)

    def decide(self, method: str, template: str, path: str) -> FaultDecision:
        delay = 0.0
        with self._lock:
            for index, rule in enumerate(self.plan.rules):
                if not rule.matches(method, template, path):
                    continue
                self._matched[index] += 1
                nth = self._matched[index]
                if nth <= rule.skip:
                    continue
                if rule.first is not None and self._fired[index] >= rule.first:
                    continue
                if rule.every is not None and (nth - rule.skip) % rule.every != 0:
                    continue
                rng = self._rngs[index]
                if rule.probability < 1.0 and rng.random() >= rule.probability:
                    continue
                self._fired[index] += 1
                delay += rule.latency_ms / 1000.0
                if rule.jitter_ms:
                    delay += rng.uniform(0.0, rule.jitter_ms) / 1000.0
                if (
                    rule.status is None
                    and not rule.reset
                    and rule.truncate_bytes is None
                    and rule.slow_bytes_per_s is None
                    and rule.redirect_to is None
                    and not rule.page_loop
                ):
                    continue  # pure latency: later rules may still add a failure
                return FaultDecision(
                    delay_s=delay,
                    status=rule.status,
                    retry_after=rule.retry_after,
                    reset=rule.reset,
                    truncate_bytes=rule.truncate_bytes,
                    slow_bytes_per_s=rule.slow_bytes_per_s,
                    redirect_to=rule.redirect_to,
                    redirect_status=rule.redirect_status,
                    page_loop=rule.page_loop,
                    rule_index=index,
                )
        return FaultDecision(delay_s=delay)

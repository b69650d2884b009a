"""Each criterion's target and how a value meets it, in one place: the evaluations, ``cidash compare``'s verdict
column and anything else that asks "does this value pass?" read it here."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cidash.config import Config

_COMPARE: Mapping[str, Callable[[float, float], bool]] = MappingProxyType(
    {"<=": operator.le, ">=": operator.ge, ">": operator.gt}
)


@dataclass(frozen=True, slots=True)
class Target:
    """``comparator`` (``<=``, ``>=``, ``>``) and where the configured target is."""

    comparator: str
    of: Callable[[Config], float]

    def met(self, value: float, config: Config) -> bool:
        return _COMPARE[self.comparator](value, self.of(config))


TARGETS: Mapping[str, Target] = MappingProxyType(
    {
        "image_size": Target("<=", lambda c: c.criteria.image_size_mb),
        "startup_improvement": Target(">=", lambda c: c.criteria.startup_improvement_pct),
        "image_build_reliability": Target(">", lambda c: c.criteria.image_build_reliability_pct),
        "stale_caches": Target("<=", lambda c: c.criteria.stale_caches_max),
        "cache_key_files": Target("<=", lambda c: c.criteria.cache_key_files_max),
        "cache_writers": Target("<=", lambda c: c.criteria.cache_writers_max),
    }
)


def meets(criterion: str, value: float, config: Config) -> bool:
    """Whether ``value`` meets ``criterion``'s configured target (KeyError for a criterion without a numeric
    target, e.g. ``tools_verified``)."""
    return TARGETS[criterion].met(value, config)


def image_size_limit_mb(config: Config) -> float:
    """The CI-image size target (MB), for the line the Images chart draws."""
    return TARGETS["image_size"].of(config)

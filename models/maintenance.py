"""Announced maintenance: components expected to misbehave for a while.

A maintenance window names components and a span of event time. While it
runs, the correlation stage does not page for those components: their
user-facing series do not count as users hurt, and they cannot be named root
cause. Their anomalies are still detected and reported, and nothing is
learned differently, so a maintenance that overruns its window pages as soon
as the window ends. Everything not announced pages as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """Components announced to be under maintenance from ``start`` to ``end``.

    >>> w = MaintenanceWindow(("mongodb",), 100.0, 200.0, "index rebuild")
    >>> w.covers(150.0), w.covers(200.0)
    (True, False)
    """

    components: tuple[str, ...]
    start: float
    end: float
    note: str = ""

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end

    def to_dict(self) -> dict[str, object]:
        return {
            "components": list(self.components),
            "start": self.start,
            "end": self.end,
            "note": self.note,
        }


def under_maintenance(schedule: Iterable[MaintenanceWindow], t: float) -> frozenset[str]:
    """Components under announced maintenance at event time ``t``.

    >>> schedule = [MaintenanceWindow(("a", "b"), 0.0, 10.0), MaintenanceWindow(("c",), 5.0, 9.0)]
    >>> sorted(under_maintenance(schedule, 6.0)), sorted(under_maintenance(schedule, 9.5))
    (['a', 'b', 'c'], ['a', 'b'])
    """
    return frozenset(c for w in schedule if w.covers(t) for c in w.components)

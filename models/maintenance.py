"""Announced maintenance: components expected to misbehave for a while.

A maintenance window names components and a span of event time. While it
runs, the correlation stage does not page for those components: their
user-facing series do not count as users hurt, and they cannot be named root
cause. Their anomalies are still detected and reported, and nothing is
learned differently, so a maintenance that overruns its window pages as soon
as the window ends. Everything not announced pages as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.topology import Topology


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

    @classmethod
    def from_dict(cls, d: dict[str, Any], when: Callable[[Any], float]) -> MaintenanceWindow:
        """One ``[[maintenance]]`` table; ``when`` reads its start and end."""
        missing = [key for key in ("components", "start", "end") if key not in d]
        if missing:
            raise ValueError(f"a [[maintenance]] table lacks {' and '.join(missing)}")
        if not isinstance(d["components"], list):
            raise ValueError("a [[maintenance]] table's components must be a list of names")
        window = cls(
            tuple(d["components"]), when(d["start"]), when(d["end"]), str(d.get("note", ""))
        )
        if window.end <= window.start:
            raise ValueError(f"maintenance {window.components}: it ends before it starts")
        return window

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


def instant(value: Any) -> float:
    """An absolute time: a TOML date-time, or an ISO 8601 text (UTC if no zone).

    >>> instant("2022-10-06T10:30:00Z") == instant(datetime(2022, 10, 6, 10, 30))
    True
    """
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def calendar_from_dict(data: dict[str, Any], topology: Topology) -> tuple[MaintenanceWindow, ...]:
    """An operator's maintenance calendar: ``[[maintenance]]`` tables with
    ``components``, absolute ``start`` and ``end``, and a ``note``.

    >>> topology = Topology.from_dict({"nodes": {"db": {"family": "pods", "entities": ["db"]}}})
    >>> table = {"components": ["db"], "start": "2022-10-06T10:30Z", "end": "2022-10-06T11:00Z"}
    >>> calendar_from_dict({"maintenance": [table]}, topology)[0].components
    ('db',)
    >>> calendar_from_dict({"maintenance": [table | {"components": ["dbs"]}]}, topology)
    Traceback (most recent call last):
    ...
    ValueError: maintenance names 'dbs', which is not a component of the topology

    An empty file is an empty calendar (one kept ready for the next window);
    a file with other tables and none of these (another file given by
    mistake) is refused. A calendar may also say ``maintenance = []``.

    >>> calendar_from_dict({}, topology)
    ()
    >>> calendar_from_dict({"project": {"name": "x"}}, topology)
    Traceback (most recent call last):
    ...
    ValueError: no [[maintenance]] table; a calendar with none says maintenance = []
    """
    tables = data.get("maintenance", [] if not data else None)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError("no [[maintenance]] table; a calendar with none says maintenance = []")
    windows = tuple(MaintenanceWindow.from_dict(m, instant) for m in tables)
    for window in windows:
        for component in window.components:
            if component not in topology.nodes:
                raise ValueError(
                    f"maintenance names {component!r}, which is not a component of the topology"
                )
    return windows

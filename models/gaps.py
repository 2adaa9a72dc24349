"""Telemetry gaps: an entity that stops reporting while the others go on.

Silence is not health. An entity whose telemetry stops has unknown state:
its detectors keep what they last knew (an anomaly stays open), and the gap
is reported with its start, so that nobody reads a quiet dashboard as a
green one. A gap alone never pages: the monitoring is broken, not
(necessarily) the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from models.snapshot import as_float, dict_of, record_from_state, record_state


@dataclass(frozen=True, slots=True)
class TelemetryGap:
    """An entity silent since ``start`` (the first window it missed)."""

    entity: str
    start: float
    at: float  # event time at which the silence was judged a gap
    ended_at: float | None = None


class GapWatch:
    """Which entities have gone silent, window by window.

    An entity is in a gap once it has been missing from ``gap_after_s`` of
    windows that others reported in, and from at least ``slack`` times its
    longest silence so far (an entity that is sometimes quiet for a minute
    is not lost after one). The gap ends when it reports again.

    Examples
    --------
    >>> watch = GapWatch(window_s=10, gap_after_s=30)
    >>> for t in range(0, 100, 10):
    ...     _ = watch.update(float(t), t + 15.0, {"a", "b"})
    >>> [watch.update(float(t), t + 15.0, {"a"}) for t in range(100, 140, 10)]
    [[], [], [TelemetryGap(entity='b', start=100.0, at=135.0, ended_at=None)], []]
    >>> watch.update(140.0, 155.0, {"a", "b"})[0].ended_at
    155.0
    """

    def __init__(self, window_s: float = 10.0, gap_after_s: float = 60.0, slack: float = 3.0):
        self.window_s = window_s
        self.gap_after_s = gap_after_s
        self.slack = slack
        self.last_seen: dict[str, float] = {}  # entity -> start of its latest window
        self.longest: dict[str, float] = {}  # entity -> longest silence so far, in s
        self.active: dict[str, TelemetryGap] = {}

    def to_state(self) -> dict[str, Any]:
        return {
            "last_seen": dict(self.last_seen),
            "longest": dict(self.longest),
            "active": {e: record_state(gap) for e, gap in self.active.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], **settings: Any) -> GapWatch:
        """The watch built with ``settings`` (as for ``__init__``), holding ``state``."""
        watch = cls(**settings)
        watch.last_seen = dict_of(as_float, state["last_seen"])
        watch.longest = dict_of(as_float, state["longest"])
        watch.active = dict_of(partial(record_from_state, TelemetryGap), state["active"])
        return watch

    def update(self, start: float, at: float, present: set[str]) -> list[TelemetryGap]:
        """One decided window and the entities that reported in it; the gaps
        that just started or ended."""
        changes: list[TelemetryGap] = []
        if not present:  # nobody spoke: the stream paused, no entity is singled out
            return changes
        for entity in sorted(present):  # a set's order changes from run to run; events must not
            last = self.last_seen.get(entity)
            if last is not None and start > last:
                silence = start - last - self.window_s
                if silence > self.longest.get(entity, 0.0):
                    self.longest[entity] = silence
            self.last_seen[entity] = max(start, last if last is not None else start)
            gap = self.active.pop(entity, None)
            if gap is not None:
                changes.append(TelemetryGap(entity, gap.start, gap.at, ended_at=at))
        for entity, last in self.last_seen.items():
            if entity in present or entity in self.active:
                continue
            silence = start - last  # windows missed, in seconds, this one included
            if silence >= max(self.gap_after_s, self.slack * self.longest.get(entity, 0.0)):
                gap = self.active[entity] = TelemetryGap(entity, last + self.window_s, at)
                changes.append(gap)
        return changes

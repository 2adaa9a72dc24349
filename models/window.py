"""Event-time windows per series, closed by a watermark.

Detectors see one aggregate per series and window, not every raw sample, so
their cost grows with the number of series, not with the message rate. The
watermark is the latest batch time that the two most advanced senders have
both reached (``EventClock``); a window closes once the watermark has passed
its end by the allowed lateness. Points that arrive for a window
already closed are late and are counted, never folded in silently.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from models.mentions import is_outage_mention
from models.schema import EARLIEST_TS, LATEST_TS, WIRE_METRICS, Telemetry
from models.snapshot import as_count, as_float, as_list, as_str, dict_of

SeriesKey = tuple[str, str]  # (entity, series metric)


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """Aggregates of one window for every series that reported in it."""

    start: float
    end: float
    decided_at: float  # the watermark when the window closed: when we could know
    values: dict[SeriesKey, float]


class _Sums:
    """Running sums for one entity in one window."""

    __slots__ = ("n", "sums", "texts")

    def __init__(self) -> None:
        self.n: dict[str, int] = defaultdict(int)
        self.sums: dict[str, float] = defaultdict(float)
        self.texts = 0


def _aggregate(family: str, entity: str, acc: _Sums, window_s: float) -> dict[SeriesKey, float]:
    out: dict[SeriesKey, float] = {}
    if family == "social":
        out[(entity, "mention_rate")] = acc.texts / window_s
        out[(entity, "outage_mention_rate")] = acc.sums["outage"] / window_s
    elif family == "logins":
        attempts = acc.sums["attempts"]
        out[(entity, "attempt_rate")] = attempts / window_s
        if attempts > 0:
            out[(entity, "success_ratio")] = min(1.0, acc.sums["successes"] / attempts)
            out[(entity, "timeout_ratio")] = min(1.0, acc.sums["timeouts"] / attempts)
    else:
        specs = WIRE_METRICS[family]
        for metric, total in acc.sums.items():
            rate = specs[metric].counter
            out[(entity, metric)] = total / window_s if rate else total / acc.n[metric]
    return out


class EventClock:
    """The stream's event time as its senders agree on it: the latest batch
    time that its two most advanced senders have both reached. One sender
    alone cannot move it (a message dated ahead, a clock gone wrong), but
    in a stream of one sender, which has no one else to agree with.

    >>> clock = EventClock()
    >>> clock.claim("a", 100.0); clock.claim("b", 100.0); clock.agreed()
    100.0
    >>> clock.claim("a", 3700.0); clock.agreed()  # a alone, an hour ahead
    100.0
    >>> clock.claim("a", 105.0); clock.claim("b", 105.0); clock.agreed()
    105.0
    """

    def __init__(self) -> None:
        self.latest: dict[str, float] = {}  # every sender's latest batch time taken
        self._top: list[tuple[float, str]] = []  # the two most advanced, latest first
        # Times claimed by messages refused as too far ahead, by sender.
        self.ahead: dict[str, float] = {}

    def agreed(self) -> float:
        return self._top[-1][0] if self._top else float("-inf")

    def claim(self, entity: str, time: float) -> None:
        """A batch of ``entity`` cut at ``time`` was taken."""
        self.ahead.pop(entity, None)
        before = self.latest.get(entity)
        if before == time:
            return
        self.latest[entity] = time
        leads = any(e == entity for _, e in self._top)
        if before is not None and time < before and leads:
            # A leader went back: the rare case, worth a look at every sender.
            self._top = heapq.nlargest(2, ((t, e) for e, t in self.latest.items()))
            return
        if not leads and len(self._top) == 2 and (time, entity) < self._top[1]:
            return  # behind both leaders: most claims
        top = [(t, e) for t, e in self._top if e != entity]
        top.append((time, entity))
        top.sort(reverse=True)
        self._top = top[:2]

    def moved_on(self, entity: str, time: float, within: float) -> bool:
        """Whether a batch far ahead of the stream is the stream moving on
        (all of it back after a long silence, say), not one sender astray:
        so once half the senders, and at least two (or one sender twice),
        have claimed times within ``within`` of it. A batch refused as too
        far ahead is shown here first; its claim counts for the next ones.

        >>> clock = EventClock()
        >>> for e in "abcd": clock.claim(e, 100.0)
        >>> [clock.moved_on(e, 4000.0, 900.0) for e in "abcd"]
        [False, True, True, True]
        >>> clock.moved_on("a", 9000.0, 900.0)  # one sender far ahead again
        False
        """
        again = abs(self.ahead.get(entity, float("inf")) - time) <= within
        self.ahead[entity] = time
        votes = sum(abs(t - time) <= within for t in self.ahead.values())
        senders = len(self.latest.keys() | self.ahead.keys())
        return 2 * votes >= senders and (votes >= 2 or again)

    def to_state(self) -> dict[str, dict[str, float]]:
        return {"latest": dict(self.latest), "ahead": dict(self.ahead)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EventClock:
        clock = cls()
        clock.latest = dict_of(as_float, state["latest"])
        clock.ahead = dict_of(as_float, state["ahead"])
        clock._top = heapq.nlargest(2, ((t, e) for e, t in clock.latest.items()))
        return clock


class Windower:
    """Tumbling event-time windows with a watermark and allowed lateness.

    >>> from models.schema import Telemetry
    >>> w = Windower(window_s=10, lateness_s=0)
    >>> w.add(Telemetry("pods", "user-svc", 9.0, [8.0, 9.0], {"error_rate": [0.1, 0.3]}))
    ([], 0)
    >>> closed, late = w.add(Telemetry("pods", "user-svc", 10.0, [10.0], {"error_rate": [0.0]}))
    >>> closed[0].values
    {('user-svc', 'error_rate'): 0.2}
    """

    def __init__(self, window_s: float = 10.0, lateness_s: float = 5.0) -> None:
        self.window_s = window_s
        self.lateness_s = lateness_s
        self.watermark = float("-inf")  # the senders' agreed time (EventClock), never back
        self.clock = EventClock()
        self.closed_until = float("-inf")  # windows ending at or before this are closed
        self._open: dict[float, dict[str, tuple[str, _Sums]]] = {}

    def to_state(self) -> dict[str, Any]:
        """Watermark, decided windows and the sums of every open window.

        >>> w = Windower(window_s=10, lateness_s=0)
        >>> _ = w.add(Telemetry("pods", "api", 9.0, [8.0], {"error_rate": [0.1]}))
        >>> start, [[entity, family, sums]] = w.to_state()["open"][0]
        >>> start, entity, family, sums
        (0.0, 'api', 'pods', {'n': {'error_rate': 1}, 'sums': {'error_rate': 0.1}, 'texts': 0})
        """
        return {
            "watermark": self.watermark,
            "senders": self.clock.to_state(),
            "closed_until": self.closed_until,
            "open": [
                [
                    start,
                    [
                        [
                            entity,
                            family,
                            {"n": dict(acc.n), "sums": dict(acc.sums), "texts": acc.texts},
                        ]
                        for entity, (family, acc) in entities.items()
                    ],
                ]
                for start, entities in self._open.items()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], window_s: float, lateness_s: float) -> Windower:
        w = cls(window_s, lateness_s)
        w.watermark = as_float(state["watermark"])
        w.clock = EventClock.from_state(state["senders"])
        senders = [*w.clock.latest.values(), *w.clock.ahead.values()]
        if any(not EARLIEST_TS <= t <= LATEST_TS for t in senders):
            raise ValueError("a sender's time outside 2000..2100")
        # The watermark is a time the senders reached, or nothing yet.
        if w.watermark > max(w.clock.latest.values(), default=float("-inf")):
            raise ValueError(f"watermark {w.watermark} is past every sender's latest batch")
        w.closed_until = as_float(state["closed_until"])
        for raw in as_list(state["open"]):
            start, entities = as_list(raw, 2)
            slots = w._open[as_float(start)] = {}
            for item in as_list(entities):
                entity, family, sums = as_list(item, 3)
                if family not in WIRE_METRICS or not set(sums["n"]) <= set(WIRE_METRICS[family]):
                    raise ValueError(f"no such family and metrics: {family!r}, {list(sums['n'])}")
                acc = _Sums()
                acc.n.update(dict_of(as_count, sums["n"]))
                acc.sums.update(dict_of(as_float, sums["sums"]))
                acc.texts = as_count(sums["texts"])
                # A mean needs the points it is over.
                if set(acc.sums) - ({"outage"} if family == "social" else set(acc.n)):
                    raise ValueError(f"sums without counts in an open window: {list(acc.sums)}")
                if 0 in acc.n.values():
                    raise ValueError("an open window counts 0 points of a metric it sums")
                slots[as_str(entity)] = (as_str(family), acc)
        return w

    def keep_only(self, family_of: dict[str, str]) -> None:
        """Forget the open sums of entities not of these families (a topology
        that no longer holds them: their telemetry is refused now)."""
        for entities in self._open.values():
            for entity, (family, _) in list(entities.items()):
                if family_of.get(entity) != family:
                    del entities[entity]

    def _bucket(self, ts: float) -> float:
        return ts - ts % self.window_s

    def add(self, tel: Telemetry) -> tuple[list[ClosedWindow], int]:
        """Fold one message in; return the windows it closed and its late points."""
        late = 0
        if tel.ts:
            first, last = self._bucket(min(tel.ts)), self._bucket(max(tel.ts))
            if first == last and first >= self.closed_until:
                self._fold(first, tel, range(len(tel.ts)))
            else:
                by_bucket: dict[float, list[int]] = defaultdict(list)
                for i, ts in enumerate(tel.ts):
                    by_bucket[self._bucket(ts)].append(i)
                for start, idx in by_bucket.items():
                    if start < self.closed_until:
                        late += len(idx)
                    else:
                        self._fold(start, tel, idx)
        self.clock.claim(tel.entity, tel.time)
        self.watermark = max(self.watermark, self.clock.agreed())
        return self._close(self.watermark - self.lateness_s), late

    def _fold(self, start: float, tel: Telemetry, idx: range | list[int]) -> None:
        entities = self._open.setdefault(start, {})
        slot = entities.get(tel.entity)
        if slot is None:
            slot = entities[tel.entity] = (tel.family, _Sums())
        acc = slot[1]
        whole = isinstance(idx, range)
        if tel.family == "social":
            texts = tel.text if whole else [tel.text[i] for i in idx]
            acc.texts += len(texts)
            acc.sums["outage"] += sum(map(is_outage_mention, texts))
            return
        for metric, col in tel.metrics.items():
            values = col if whole else [col[i] for i in idx]
            acc.sums[metric] += sum(values)
            acc.n[metric] += len(values)

    def partial(self, entity: str, time: float) -> tuple[float, dict[SeriesKey, float]] | None:
        """The open window a batch of ``entity`` cut at ``time`` reached into,
        and the entity's aggregates over the part of it delivered so far:
        when that part is at least half the window (less is too little to
        judge by).

        >>> w = Windower(window_s=10, lateness_s=5)
        >>> _ = w.add(Telemetry("pods", "api", 16.0, [10.0, 15.0], {"error_rate": [0.1, 0.3]}))
        >>> w.partial("api", 16.0)
        (10.0, {('api', 'error_rate'): 0.2})
        >>> w.partial("api", 14.0) is None  # four seconds of ten
        True
        """
        start = self._bucket(time)
        slot = self._open.get(start, {}).get(entity)
        delivered = time - start
        if slot is None or delivered < self.window_s / 2:
            return None
        family, acc = slot
        return start, _aggregate(family, entity, acc, delivered)

    def _close(self, until: float) -> list[ClosedWindow]:
        due = [s for s in self._open if s + self.window_s <= until]
        if not due and not until - until % self.window_s > self.closed_until:
            return []  # nothing to close or mark: most messages
        closed: list[ClosedWindow] = []
        for start in sorted(due):
            values: dict[SeriesKey, float] = {}
            for entity, (family, acc) in self._open.pop(start).items():
                values.update(_aggregate(family, entity, acc, self.window_s))
            end = start + self.window_s
            closed.append(ClosedWindow(start, end, self.watermark, values))
            self.closed_until = max(self.closed_until, end)
        if math.isfinite(until):
            # Windows that saw no data close too: nothing may be folded in later.
            self.closed_until = max(self.closed_until, until - until % self.window_s)
        return closed

    def flush(self) -> list[ClosedWindow]:
        """Close every open window (end of a finite replay)."""
        return self._close(float("inf"))

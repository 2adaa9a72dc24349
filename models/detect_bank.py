"""The anomaly state of many series at once, as arrays.

The detection stage judges every series of a closed window. One
:class:`~models.detect.SeriesMonitor` per series, each over its own
:class:`~models.detectors.surprise.SurpriseDetector`, costs a few
microseconds of Python per series and window. :class:`SurpriseBank` holds
the same state as numpy columns, one row per series, and steps all the
series of a window in a few array operations, with the same decisions.

Why they are the same: every learned quantity (level, spread, short mean,
step, event counts) is computed with the operations of the scalar code in
the same order, and IEEE ``+ - * /`` round alike in numpy and in Python, so
the learned state is bit-identical; ``min`` and ``max`` keep Python's
choice of the first argument on ties. Surprises need ``erfc`` and
logarithms, which scipy and numpy may round differently from the ``math``
module in the last bits. A surprise is never stored, only compared (the
spike's with the shift's, with the event threshold, with the anomaly's
entry and exit): a row where any comparison is too close to call
(:attr:`SurpriseBank.slack`) is scored again with the scalar functions, so
each comparison comes out as the scalar code's.

A bank takes the series whose detector has the parameters the pipeline
gives it (no season, no unit-based recurrence); any other series keeps its
own monitor (:meth:`SurpriseBank.fits`).
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from models.detect import Anomaly, SeriesMonitor
from models.detectors.surprise import (
    MAD_TO_SD,
    STATE_FIELDS,
    SurpriseDetector,
    add_event,
    poisson_surprise,
    poisson_surprises,
    recurs,
    routine_surprise,
    tail_surprise,
    tail_surprises,
)
from models.schema import Bad, MetricSpec
from models.snapshot import as_int, record_state

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]

# Detector parameters that differ between the series of one bank: the rest are shared.
_PER_ROW = ("floor", "rel_floor")
_SHARED = tuple(
    name
    for name in inspect.signature(SurpriseDetector.__init__).parameters
    if name not in ("self", *_PER_ROW)
)
# The anomaly logic's settings, shared too.
_MONITOR = ("enter", "leave", "confirm", "clear", "max_hold", "detector_name")
# Harmful direction per row: +1 high, -1 low, 0 either way.
_HARM_SIGN = {Bad.HIGH: 1, Bad.LOW: -1, Bad.EITHER: 0}


def _first_max(a: Any, b: Any) -> Any:
    """Python's ``max(a, b)`` elementwise: ``a`` unless ``b`` is greater (NaN and
    signed zeros come out as Python's would, where ``np.maximum`` differs)."""
    return np.where(b > a, b, a)


def _first_min(a: Any, b: Any) -> Any:
    """Python's ``min(a, b)`` elementwise: ``a`` unless ``b`` is smaller."""
    return np.where(b < a, b, a)


def _places(mask: Bools) -> list[int]:
    """Where ``mask`` holds: the few rows a Python loop must visit."""
    return np.flatnonzero(mask).tolist() if mask.any() else []


class BankChange(NamedTuple):
    """An anomaly that started or ended on one row of a step."""

    place: int  # its place among the step's rows
    anomaly: Anomaly  # as ``SeriesMonitor.update`` returns it
    started: Anomaly  # the anomaly as it started (itself, if it just did)


class SurpriseBank:
    """The state of many :class:`~models.detect.SeriesMonitor` over a
    :class:`~models.detectors.surprise.SurpriseDetector`, one row per series.

    Built from a first monitor, whose settings every row shares (all but the
    detector's ``floor`` and ``rel_floor``, which are the metric's); a
    monitor that fits (:meth:`fits`) becomes a row with :meth:`add`.
    :meth:`step` then scores, judges and learns one window's values of any
    rows at once and returns the anomalies that started or ended, the same
    records each monitor would have returned.

    >>> import numpy as np
    >>> from models.schema import SERIES_METRICS
    >>> errors = SERIES_METRICS["pods"]["error_rate"]
    >>> bank = SurpriseBank(SeriesMonitor("api", errors))
    >>> api, db = bank.add(SeriesMonitor("api", errors)), bank.add(SeriesMonitor("db", errors))
    >>> rows = np.array([api.row, db.row])
    >>> for t in range(60):
    ...     _ = bank.step(rows, np.array([0.01, 0.02 + 0.001 * (t % 3)]), 10.0 * t, 10.0 * t + 15)
    >>> [(c.place, c.anomaly.entity) for c in bank.step(rows, np.array([0.01, 0.4]), 600.0, 615.0)]
    [(1, 'db')]
    >>> db.active is not None, api.active is None
    (True, True)

    A row's state is its monitor's, field for field:

    >>> SeriesMonitor.from_state(db.to_state(), "db", errors).to_state() == db.to_state()
    True
    """

    # How close (relative to the larger, or to 1) two surprises are too close
    # to compare as estimates: far above the estimates' error (a few 1e-16,
    # see tests/models/test_detect_bank.py), far below any real margin.
    slack = 1e-9

    def __init__(self, template: SeriesMonitor, capacity: int = 64) -> None:
        det = template.detector
        if not isinstance(det, SurpriseDetector) or not self.supports(det):
            raise ValueError(f"a bank cannot hold {template.entity}'s {type(det).__name__}")
        self.params: dict[str, Any] = {name: getattr(det, name) for name in _SHARED}
        self.settings: dict[str, Any] = {name: getattr(template, name) for name in _MONITOR}
        # A detector with the shared parameters, read as the scalar code reads them.
        self._proto = SurpriseDetector(**self.params)
        self._enter = tail_surprise(template.enter)
        self._leave = tail_surprise(template.leave)
        self.size = 0
        self._capacity = 0
        # The detector's learned state, one column per field of its state.
        self._learned: dict[str, NDArray[Any]] = {
            name: np.zeros(0, np.int64 if read is as_int else np.float64)
            for name, read in STATE_FIELDS
        }
        self._events: Bools = np.zeros((0, det.density_window), np.bool_)
        self._floor: Floats = np.zeros(0)
        self._rel_floor: Floats = np.zeros(0)
        self._harm: NDArray[np.int8] = np.zeros(0, np.int8)
        # The monitor's counters, and whether an anomaly is active.
        self._streak: Ints = np.zeros(0, np.int64)
        self._calm: Ints = np.zeros(0, np.int64)
        self._held: Ints = np.zeros(0, np.int64)
        self._first: Floats = np.zeros(0)
        self._on: Bools = np.zeros(0, np.bool_)
        # Per row, in Python: rare or of varying length.
        self.entity: list[str] = []
        self.metric: list[str] = []
        self.spec: list[MetricSpec] = []
        self.active: list[Anomaly | None] = []
        self._episodes: list[list[tuple[int, float]]] = []
        self._dblocks: list[list[int]] = []
        self._grow(capacity)

    # ------------------------------------------------------------ rows

    @staticmethod
    def supports(det: SurpriseDetector) -> bool:
        """Whether a bank can run ``det``'s parameters: no season and none of
        the options for series of unknown kind (NAB's), which stay scalar."""
        return (
            det.period <= 1
            and not det.recur_units
            and det.recur_tol == 0.0
            and not det.density_recur
            and det.season_beta == 0.0
            and det.alpha_short > 0
            and det.density_window > 0
            and det.memory > 0
        )

    def fits(self, mon: SeriesMonitor) -> bool:
        """Whether ``mon`` can become a row: a surprise detector with this
        bank's parameters and a monitor with its settings."""
        det = mon.detector
        return (
            type(det) is SurpriseDetector
            and all(getattr(det, name) == value for name, value in self.params.items())
            and all(getattr(mon, name) == value for name, value in self.settings.items())
        )

    def add(self, mon: SeriesMonitor) -> BankedMonitor:
        """A new row holding ``mon``'s state (``ValueError`` if it does not fit)."""
        if not self.fits(mon):
            raise ValueError(f"{mon.entity}'s {mon.metric} monitor does not fit this bank")
        if self.size == self._capacity:
            self._grow(2 * self._capacity)
        row = self.size
        self.size += 1
        state = mon.to_state()
        learned = state["learned"]
        for name, column in self._learned.items():
            column[row] = learned[name]
        self._events[row] = learned["_events"]
        self._episodes.append([(last, peak) for last, peak in learned["_episodes"]])
        self._dblocks.append(list(learned["_dblocks"]))
        det = mon.detector
        assert isinstance(det, SurpriseDetector)  # fits() saw to it
        self._floor[row] = det.floor
        self._rel_floor[row] = det.rel_floor
        self._harm[row] = _HARM_SIGN[mon.spec.bad]
        self._streak[row] = state["streak"]
        self._calm[row] = state["calm"]
        self._held[row] = state["held"]
        self._first[row] = state["first"]
        self._on[row] = mon.active is not None
        self.entity.append(mon.entity)
        self.metric.append(mon.metric)
        self.spec.append(mon.spec)
        self.active.append(mon.active)
        return BankedMonitor(self, row)

    def _grow(self, capacity: int) -> None:
        capacity = max(capacity, 1)

        def grown(column: NDArray[Any]) -> NDArray[Any]:
            out = np.zeros((capacity, *column.shape[1:]), column.dtype)
            out[: self.size] = column[: self.size]
            return out

        self._learned = {name: grown(column) for name, column in self._learned.items()}
        self._events = grown(self._events)
        self._floor, self._rel_floor = grown(self._floor), grown(self._rel_floor)
        self._harm = grown(self._harm)
        self._streak, self._calm, self._held = (
            grown(self._streak),
            grown(self._calm),
            grown(self._held),
        )
        self._first, self._on = grown(self._first), grown(self._on)
        self._capacity = capacity

    def baseline(self, row: int) -> float:
        """The level ``row``'s series is expected at."""
        return float(self._learned["_level"][row])

    def state(self, row: int) -> dict[str, Any]:
        """``row``'s state, exactly as its ``SeriesMonitor.to_state()`` gives it."""
        learned: dict[str, Any] = {name: col[row].item() for name, col in self._learned.items()}
        learned["_episodes"] = [[last, peak] for last, peak in self._episodes[row]]
        learned["_ring"] = []
        learned["_events"] = self._events[row].tolist()
        learned["_dblocks"] = list(self._dblocks[row])
        active = self.active[row]
        return {
            "detector": self.settings["detector_name"],
            "learned": learned,
            "active": None if active is None else record_state(active),
            "streak": self._streak[row].item(),
            "calm": self._calm[row].item(),
            "held": self._held[row].item(),
            "first": self._first[row].item(),
        }

    def detector(self, row: int) -> SurpriseDetector:
        """A copy of ``row``'s detector, standing alone: learning it changes
        nothing here."""
        floors = {"floor": self._floor[row].item(), "rel_floor": self._rel_floor[row].item()}
        return SurpriseDetector.from_state(self.state(row)["learned"], **self.params, **floors)

    # ------------------------------------------------------------ stepping

    def step(self, rows: Ints, values: Floats, start: float, at: float) -> list[BankChange]:
        """Judge one window: ``values[i]`` of the series of ``rows[i]`` (each
        row once), for the window from ``start``, known at ``at``.

        Each row goes through ``SeriesMonitor.update``: scored, its anomaly
        state moved on, learnt unless anomalous. The anomalies that started
        or ended come back in the order of ``rows``.
        """
        if len(rows) == 0:
            return []
        x = values
        with np.errstate(all="ignore"):  # a cold row's scores are computed, then dropped
            ev = self._score(rows, x)
        started, ended, learn = self._judge(rows, ev, start)
        with np.errstate(all="ignore"):
            self._learn(rows[learn], x[learn], _subset(ev, learn))
        changes: list[BankChange] = []
        for i in _places(started | ended):
            row = int(rows[i])
            value, deviation = float(x[i]), float(ev.z[i])
            was = self.active[row]
            if was is None:
                first = float(self._first[row])
                began = Anomaly(
                    self.entity[row],
                    self.metric[row],
                    first,
                    at,
                    value,
                    self.baseline(row),
                    deviation,
                )
                self.active[row] = began
                changes.append(BankChange(i, began, began))
            else:
                over = replace(
                    was, value=value, baseline=self.baseline(row), deviation=deviation, ended_at=at
                )
                self.active[row] = None
                changes.append(BankChange(i, over, was))
        return changes

    def _score(self, rows: Ints, x: Floats) -> _Scores:
        """What ``SurpriseDetector.assess`` works out for each row, in arrays."""
        p = self._proto
        col = self._learned
        n, level, mad = col["_n"][rows], col["_level"][rows], col["_mad"][rows]
        short, step = col["_short"][rows], col["_step"][rows]
        floor = _first_max(self._floor[rows], self._rel_floor[rows] * np.abs(level))
        floor = _first_max(_first_max(floor, p.step_floor * step), 1e-12)
        scale = _first_max(MAD_TO_SD * mad, floor)
        lim = p.clip * scale
        short_next = short + p.alpha_short * (
            _first_max(level - lim, _first_min(level + lim, x)) - short
        )
        warm = (n != 0) & (n >= p.warm_up)
        z_spike = (x - level) / scale
        z_shift = (short_next - level) / (scale * p.short_se)
        s_spike, s_shift = tail_surprises(z_spike), tail_surprises(z_shift)
        shift = s_shift > s_spike
        s = np.where(warm, np.where(shift, s_shift, s_spike), 0.0)
        z = np.where(warm, np.where(shift, z_shift, z_spike), 0.0)
        event = s >= p.event
        picked = s.copy()
        for i in _places(event):
            if self._routine(int(rows[i]), int(n[i]), abs(float(z[i]))):
                s[i] = routine_surprise(float(s[i]), p.event)
        pos = col["_event_pos"][rows]
        slot = self._events[rows, pos]
        count = col["_event_count"][rows] + event.astype(np.int64) - slot.astype(np.int64)
        lam = _first_max(col["_event_rate"][rows], p.density_prior) * p.density_window
        s = np.where(warm, _first_max(s, poisson_surprises(count, lam)), s)
        harm = self._harmful(rows, s, z)
        # Close calls: settled by the scalar functions, on the same inputs.
        close = (self._near(s_spike, s_shift) & (np.abs(z_spike) != np.abs(z_shift))) | (
            self._near(picked, p.event)
            | self._near(harm, self._enter)
            | self._near(harm, self._leave)
        )
        for i in _places(warm & close):
            row = int(rows[i])
            si, zi = tail_surprise(float(z_spike[i])), float(z_spike[i])
            if (shifted := tail_surprise(float(z_shift[i]))) > si:
                si, zi = shifted, float(z_shift[i])
            is_event = si >= p.event
            if is_event and self._routine(row, int(n[i]), abs(zi)):
                si = routine_surprise(si, p.event)
            k = int(col["_event_count"][row]) + is_event - bool(slot[i])
            si = max(si, poisson_surprise(k, float(lam[i])))
            s[i], z[i], event[i], count[i] = si, zi, is_event, k
        return _Scores(
            n, z, np.abs(z), event, count, pos, scale, short_next, self._harmful(rows, s, z)
        )

    def _near(self, a: Floats, b: Floats | float) -> Bools:
        top = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0)
        near: Bools = np.abs(a - b) <= self.slack * top
        return near

    def _harmful(self, rows: Ints, s: Floats, z: Floats) -> Floats:
        """The surprise where the deviation points the harmful way, else 0."""
        sign = self._harm[rows]
        harmless = ((sign > 0) & (z <= 0)) | ((sign < 0) & (z >= 0))
        harm: Floats = np.where(harmless, 0.0, s)
        return harm

    def _routine(self, row: int, n: int, az: float) -> bool:
        """``SurpriseDetector._routine`` for one row's event."""
        p = self._proto
        col = self._learned
        need = p.recur_k
        if n - int(col["_episode_last"][row]) > p.episode_gap and col["_episode_peak"][row] >= az:
            need -= 1  # this event starts a new episode: the open one counts as past
        return recurs(self._episodes[row], n, az, need, memory=p.memory)

    def _judge(self, rows: Ints, ev: _Scores, start: float) -> tuple[Bools, Bools, Bools]:
        """``SeriesMonitor.update``'s anomaly logic: which rows start an
        anomaly, which end one, which learn."""
        on = self._on[rows]
        streak, calm, held = self._streak[rows], self._calm[rows], self._held[rows]
        hit = ~on & (ev.harm >= self._enter)
        self._first[rows] = np.where(hit & (streak == 0), start, self._first[rows])
        streak = np.where(hit, streak + 1, np.where(on, streak, 0))
        started = hit & (streak >= self.settings["confirm"])
        held = np.where(on, held + 1, held)
        calm = np.where(on, np.where(ev.harm < self._leave, calm + 1, 0), calm)
        ended = on & (calm >= self.settings["clear"])
        learn = (~on & ~hit) | (on & (held >= self.settings["max_hold"]))
        self._streak[rows] = np.where(started, 0, streak)
        self._calm[rows] = np.where(started | ended, 0, calm)
        self._held[rows] = np.where(started, 0, held)
        self._on[rows] = (on & ~ended) | started
        return started, ended, learn

    def _learn(self, rows: Ints, y: Floats, ev: _Scores) -> None:
        """``SurpriseDetector.learn_one`` of each row's value."""
        p = self._proto
        col = self._learned
        n = ev.n
        col["_n"][rows] = n + 1
        # Events: the open episode (rare, in Python), then the density ring.
        for i in _places(ev.event):
            row, at = int(rows[i]), int(n[i])
            peak, last = float(col["_episode_peak"][row]), int(col["_episode_last"][row])
            gap, memory = p.episode_gap, p.memory
            peak = add_event(
                self._episodes[row], peak, last, at, float(ev.az[i]), gap=gap, memory=memory
            )
            col["_episode_peak"][row] = peak
            col["_episode_kind"][row] = 0  # the level model's: a bank has no season
            col["_episode_last"][row] = at
        self._events[rows, ev.pos] = ev.event
        col["_event_count"][rows] = ev.recent
        col["_event_pos"][rows] = (ev.pos + 1) % p.density_window
        rate = col["_event_rate"][rows]
        col["_event_rate"][rows] = rate + p.density_alpha * (ev.event - rate)
        # A series' first value is its level; later ones move it.
        first = n == 0
        y0, rows0 = y[first], rows[first]
        col["_level"][rows0] = col["_short"][rows0] = col["_prev"][rows0] = y0
        later = ~first
        rows, y, n = rows[later], y[later], n[later]
        scale, short_next = ev.scale[later], ev.short_next[later]
        level, mad = col["_level"][rows], col["_mad"][rows]
        step, prev = col["_step"][rows], col["_prev"][rows]
        a = p.alpha
        col["_step"][rows] = step + a * (_first_min(np.abs(y - prev), p.clip * scale) - step)
        col["_prev"][rows] = y
        col["_short"][rows] = short_next
        dev = y - level
        warming = n < p.warm_up  # a plain running mean and deviation until warm
        lim = p.level_clip * scale
        col["_level"][rows] = np.where(
            warming, level + dev / (n + 1), level + a * _first_max(-lim, _first_min(lim, dev))
        )
        col["_mad"][rows] = np.where(
            warming,
            mad + (np.abs(dev) - mad) / n,
            mad + a * (_first_min(np.abs(dev), p.clip * scale) - mad),
        )


class _Scores(NamedTuple):
    """What scoring one window worked out per row, for judging and learning it."""

    n: Ints  # values learnt before this one
    z: Floats  # signed deviation, in scales (0 while cold)
    az: Floats
    event: Bools
    recent: Ints  # events in the density window, this value included
    pos: Ints  # the density ring's slot this value takes
    scale: Floats
    short_next: Floats  # the short mean once this value is learnt
    harm: Floats  # the surprise if the deviation is harmful, else 0


def _subset(ev: _Scores, keep: Bools) -> _Scores:
    return _Scores._make(column[keep] for column in ev)


class BankedMonitor:
    """One row of a :class:`SurpriseBank`, read as its ``SeriesMonitor``
    would be (what the detection stage and its callers look at)."""

    __slots__ = ("bank", "row")

    def __init__(self, bank: SurpriseBank, row: int) -> None:
        self.bank = bank
        self.row = row

    @property
    def entity(self) -> str:
        return self.bank.entity[self.row]

    @property
    def metric(self) -> str:
        return self.bank.metric[self.row]

    @property
    def spec(self) -> MetricSpec:
        return self.bank.spec[self.row]

    @property
    def active(self) -> Anomaly | None:
        return self.bank.active[self.row]

    @property
    def baseline(self) -> float:
        return self.bank.baseline(self.row)

    @property
    def detector(self) -> SurpriseDetector:
        """A standalone copy of the row's detector."""
        return self.bank.detector(self.row)

    def surprising(self, value: float) -> bool:
        """``SeriesMonitor.surprising``: scored by a copy of the row's detector."""
        surprise, z = self.detector.assess(value)
        rows = np.array([self.row], np.int64)
        harm = self.bank._harmful(rows, np.array([surprise]), np.array([z]))
        return bool(harm[0] >= self.bank._enter)

    def to_state(self) -> dict[str, Any]:
        return self.bank.state(self.row)

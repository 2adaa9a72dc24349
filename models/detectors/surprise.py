"""The surprise detector: how unlikely each value of one series is, given
its own recent behaviour.

It scores a series' values as *surprise* (``-log10`` of how unlikely each
is) from a robust level, a short-mean shift, event density and a season, with
recurrent spikes treated as routine. ``SeriesMonitor`` runs one per series
through the :class:`~models.detectors.base.Detector` contract; the same
detector scores NAB's labelled series (``bench/nab.py``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Self

import numpy as np
from numpy.typing import NDArray

from models.detectors.base import Assessment, Detector, season_of_rows
from models.schema import MetricSpec
from models.snapshot import as_bool, as_float, as_int, as_list, list_of

_LN10 = math.log(10.0)
_RSQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)
MAD_TO_SD = math.sqrt(math.pi / 2.0)  # Gaussian sigma from the mean absolute deviation

Floats = NDArray[np.float64]


def tail_surprise(z: float) -> float:
    """``-log10 P(|Z| >= |z|)`` for a standard normal ``Z`` (asymptotic past 8 sigma,
    where ``erfc`` underflows).

    >>> round(abs(tail_surprise(0.0)), 6), round(tail_surprise(1.959964), 3)
    (0.0, 1.301)
    """
    a = abs(z)
    if a < 8.0:
        return -math.log10(max(math.erfc(a * _RSQRT2), 1e-300))
    return (a * a / 2.0) / _LN10 + math.log10(a * _SQRT_HALF_PI)


def poisson_surprise(k: float, lam: float) -> float:
    """Chernoff bound on ``-log10 P(X >= k)`` for ``X ~ Poisson(lam)``; 0 when ``k <= lam``.

    >>> poisson_surprise(1, 2.0), round(poisson_surprise(10, 1.0), 2)
    (0.0, 6.09)
    """
    if k <= lam:
        return 0.0
    return (k * math.log(k / lam) - k + lam) / _LN10


# The same two over arrays. numpy's and scipy's erfc and logarithms may round
# differently from the math module's in the last bits: these are estimates,
# within a few units in the last place, for a caller that settles close calls
# with the functions above (models/detect_bank.py).


def tail_surprises(z: Floats) -> Floats:
    """:func:`tail_surprise` of each of ``z``, to within rounding.

    >>> z = np.array([0.5, 1.959964, -3.0, 40.0])
    >>> np.allclose(tail_surprises(z), [tail_surprise(v) for v in z], rtol=1e-14, atol=0)
    True
    """
    from scipy.special import (
        erfc,  # loaded on first use: a command that detects nothing starts sooner
    )

    a = np.abs(z)
    with np.errstate(all="ignore"):  # each branch is computed everywhere, kept where it holds
        near = -np.log10(np.maximum(erfc(a * _RSQRT2), 1e-300))
        far = (a * a / 2.0) / _LN10 + np.log10(a * _SQRT_HALF_PI)
    return np.where(a < 8.0, near, far)


def poisson_surprises(k: NDArray[np.int64], lam: Floats) -> Floats:
    """:func:`poisson_surprise` of each count and mean, to within rounding.

    >>> poisson_surprises(np.array([1, 10]), np.array([2.0, 1.0])).round(2).tolist()
    [0.0, 6.09]
    """
    kf = k.astype(np.float64)
    with np.errstate(all="ignore"):
        tail = (kf * np.log(kf / lam) - kf + lam) / _LN10
    return np.where(kf <= lam, 0.0, tail)


def routine_surprise(s: float, event: float) -> float:
    """The surprise of an event the series has had before: under ``event``,
    still ordered by size.

    >>> routine_surprise(12.0, 5.0) < routine_surprise(30.0, 5.0) < 5.0
    True
    """
    return event * (1.0 - 1.0 / (2.0 + math.log1p(s)))


def recurs(
    episodes: list[tuple[int, float]],
    n: int,
    az: float,
    need: int,
    *,
    memory: int,
    seasonal: bool | None = None,
) -> bool:
    """Whether ``need`` of the remembered ``episodes`` (last value, peak) within
    ``memory`` values of ``n`` peaked at ``az`` or more; with ``seasonal`` set,
    only those of that model count (a seasonal episode's peak is kept negative).

    >>> recurs([(10, 4.0), (90, -7.0)], 100, 3.0, 2, memory=200)
    True
    >>> recurs([(10, 4.0), (90, -7.0)], 100, 3.0, 2, memory=200, seasonal=False)
    False
    """
    for last, p in episodes:
        if need <= 0:
            break
        if seasonal is not None and (p < 0) != seasonal:
            continue  # like with like: a peak of the other model does not compare
        if abs(p) >= az and n - last <= memory:
            need -= 1
    return need <= 0


def add_event(
    episodes: list[tuple[int, float]],
    peak: float,
    last: int,
    n: int,
    az: float,
    *,
    gap: int,
    memory: int,
    seasonal: bool = False,
) -> float:
    """Take an event of size ``az`` at value ``n`` into the open episode (its
    ``peak`` so far, its ``last`` event); the new peak.

    An open episode whose last event is more than ``gap`` values old is
    closed first, into ``episodes`` (its peak negated if ``seasonal``), which
    forgets those older than ``memory`` values.

    >>> episodes = []
    >>> add_event(episodes, 6.0, 10, 50, 8.0, gap=20, memory=2000), episodes
    (8.0, [(10, 6.0)])
    """
    if n - last > gap:
        if peak > 0:
            episodes.append((last, -peak if seasonal else peak))
        peak = 0.0
    while episodes and n - episodes[0][0] > memory:
        episodes.pop(0)
    return max(peak, az)


class SurpriseDetector(Detector):
    """How surprising each value of one series is, learnt one value at a time.

    Four statistics are computed as surprises and the largest is kept:

    1. **Spike**: a robust z of the value against an exponentially weighted
       Huber level (steps clipped at ``level_clip`` scales, so the level sits
       near the median of a skewed or zero-inflated series) and scale (mean
       absolute deviation, clipped at ``clip`` scales so an outlier does not
       inflate it). The scale never falls under ``floor`` (in the metric's
       unit), ``rel_floor`` times the level, or ``step_floor`` times the mean
       step between values: a flat series does not divide by zero, and a 2 %
       wiggle of a rate is not news.
    2. **Seasonal**: with ``period`` values per season, the residual against
       the value one season ago. It replaces the spike while its typical error
       is under ``season_ratio`` times the level's, i.e. only on series that
       truly repeat, so that a daily peak is not an anomaly and a missing one
       is.
    3. **Level shift**: a short mean (weight ``alpha_short``) against the
       level, in units of its standard error: a sustained departure is seen
       within a few values even when no single one is extreme.
    4. **Event density**: values at least ``event`` surprising are events;
       their count over the last ``density_window`` values, against the
       series' own long-run event rate (at least ``density_prior``), by a
       Poisson tail: a series that always spikes but now spikes far more.

    **Recurrence.** A spike is news only if the series has not done it
    before: events are grouped into episodes (``episode_gap`` quiet values
    apart) whose peaks are remembered for ``memory`` values. With at least
    ``recur_k`` remembered episodes as large, the surprise is capped under
    ``event``: routine for this series. A larger-than-ever spike still counts.

    **Options** for series of unknown kind (all off by default; a NAB file's
    ``params_for_rows`` turns them on):

    - ``recur_units``: recurrence compares episode sizes in the metric's unit
      (``|x - expected|``), not in scales, and only with episodes of the same
      model (level or season): a scale that shrinks between routine spikes
      (a zero-inflated series) no longer makes each of them larger than ever.
    - ``recur_tol``: a remembered episode within this fraction of the current
      size counts as as large (measurement noise on a repeated spike).
    - ``density_recur``: an event count no higher than the ``recur_k``-th
      highest of past blocks of ``density_window`` values within ``memory`` is
      routine too (events cluster, so counts are over-dispersed).
    - ``season_beta``: the season is a profile, each phase an exponentially
      weighted mean over past seasons with this weight, rather than the single
      value one season ago: its residual is less noisy, so more series count
      as repeating and fewer seasonal values look surprising.

    Use :meth:`score_one` (or :meth:`assess`) then :meth:`learn_one`, as with
    any River anomaly detector; a caller may skip learning a value, as
    :class:`~models.detect.SeriesMonitor` does during an anomaly: its events
    then do not count as this series' habits either.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> det = SurpriseDetector()
    >>> quiet = []
    >>> for _ in range(500):
    ...     y = 10.0 + rng.gauss(0.0, 1.0)
    ...     quiet.append(det.score_one(None, y))
    ...     det.learn_one(None, y)
    >>> max(quiet) < 6
    True
    >>> surprise, deviation = det.assess(30.0)
    >>> surprise > 10, deviation > 0
    (True, True)

    Its learned state is plain data; rebuilt with the same parameters, it goes
    on exactly as the original:

    >>> twin = SurpriseDetector.from_state(det.to_state())
    >>> twin.score_one(None, 30.0) == det.score_one(None, 30.0)
    True
    """

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        alpha_short: float = 0.2,
        clip: float = 4.0,
        level_clip: float = 2.0,
        warm_up: int = 50,
        period: int = 0,
        season_ratio: float = 0.5,
        event: float = 5.0,
        episode_gap: int = 20,
        memory: int = 2000,
        recur_k: int = 2,
        density_window: int = 36,
        density_alpha: float = 0.0005,
        density_prior: float = 0.002,
        floor: float = 0.0,
        rel_floor: float = 0.02,
        step_floor: float = 0.1,
        recur_units: bool = False,
        recur_tol: float = 0.0,
        density_recur: bool = False,
        season_beta: float = 0.0,
    ) -> None:
        self.alpha = alpha
        self.alpha_short = alpha_short
        self.clip = clip
        self.level_clip = level_clip
        self.warm_up = warm_up
        self.period = period
        self.season_ratio = season_ratio
        self.event = event
        self.episode_gap = episode_gap
        self.memory = memory
        self.recur_k = recur_k
        self.density_window = density_window
        self.density_alpha = density_alpha
        self.density_prior = density_prior
        self.floor = floor
        self.rel_floor = rel_floor
        self.step_floor = step_floor
        self.recur_units = recur_units
        self.recur_tol = recur_tol
        self.density_recur = density_recur
        self.season_beta = season_beta
        # The short mean's spread relative to one value's, under no shift.
        self.short_se = math.sqrt(alpha_short / (2.0 - alpha_short)) if alpha_short > 0 else 1.0
        self._n = 0  # values learnt
        self._level = 0.0
        self._mad = 0.0
        self._short = 0.0
        self._prev = 0.0
        self._step = 0.0
        self._ring: list[float] = [math.nan] * period if period > 1 else []
        self._season_mad = 0.0
        self._err_level = 0.0
        self._err_season = 0.0
        self._episodes: list[tuple[int, float]] = []  # (last value, peak |z|)
        self._episode_peak = 0.0
        self._episode_last = -(10**9)
        self._events = [False] * density_window
        self._event_pos = 0
        self._event_count = 0
        self._event_rate = density_prior
        self._episode_kind = 0  # 1 if the open episode is the seasonal model's
        self._dblocks: list[int] = []  # density_recur: top event count of each past block
        self._dblock_max = 0
        self._dmax = 0  # the recur_k-th highest of those
        self._memo: _Evaluation | None = None  # the last value scored, for learning it

    @property
    def baseline(self) -> float:
        """The level the series is expected at."""
        return self._level

    @property
    def ready(self) -> bool:
        return self._n >= self.warm_up

    @classmethod
    def params_for(cls, spec: MetricSpec, *, fading_factor: float, warm_up: int) -> dict[str, Any]:
        # A ratio's spread does not grow with its level; a rate's or a latency's does.
        rel_floor = 0.0 if spec.ratio else 0.02
        return {
            "alpha": fading_factor,
            "floor": spec.floor,
            "rel_floor": rel_floor,
            "warm_up": warm_up,
        }

    @classmethod
    def params_for_rows(cls, step_s: float) -> dict[str, Any]:
        # A series of unknown kind: one day of rows is the season, with every
        # option for series whose habits are not known in advance.
        options = {
            "memory": 8000,
            "recur_units": True,
            "recur_tol": 0.05,
            "density_recur": True,
            "season_beta": 0.5,
        }
        return season_of_rows(step_s) | options

    def to_state(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name, _ in STATE_FIELDS}
        state["_episodes"] = [[last, peak] for last, peak in self._episodes]
        state["_ring"] = list(self._ring)
        state["_events"] = list(self._events)
        state["_dblocks"] = list(self._dblocks)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> Self:
        det = cls(**params)
        for name, read in STATE_FIELDS:
            setattr(det, name, read(state[name]))
        episodes = (as_list(e, 2) for e in as_list(state["_episodes"]))
        det._episodes = [(as_int(last), as_float(peak)) for last, peak in episodes]
        det._ring = list_of(as_float, state["_ring"], len(det._ring))
        det._events = list_of(as_bool, state["_events"], det.density_window)
        det._dblocks = list_of(as_int, state["_dblocks"])
        if det.density_window and not 0 <= det._event_pos < det.density_window:
            raise ValueError(f"event position {det._event_pos} out of range")
        return det

    def assess(self, y: float) -> Assessment:
        """The surprise of ``y`` given the past and its signed deviation."""
        e = self._evaluate(y)
        return Assessment(e.surprise, e.z)

    def _evaluate(self, x: float) -> _Evaluation:
        """Everything scoring ``x`` works out, without changing the detector;
        the last one is kept, as ``learn_one`` needs it too."""
        memo = self._memo
        if memo is not None and memo.n == self._n and memo.x == x:
            return memo
        n = self._n
        m = self._level
        floor = max(self.floor, self.rel_floor * abs(m), self.step_floor * self._step, 1e-12)
        scale = max(MAD_TO_SD * self._mad, floor)
        lag = self._ring[n % self.period] if self._ring else math.nan
        if n == 0 or n < self.warm_up:
            e = _Evaluation(n, x, 0.0, 0.0, 0.0, False, scale, floor, lag, 0)
            self._memo = e
            return e
        z, unit, kind = (x - m) / scale, scale, 0
        if self._ring:
            repeats = self._err_season < self.season_ratio * self._err_level
            if lag == lag and repeats and n > self.period + self.warm_up:
                unit, kind = max(MAD_TO_SD * self._season_mad, floor), 1
                z = (x - lag) / unit
        s = tail_surprise(z)
        if self.alpha_short > 0:
            short = self._short + self.alpha_short * (self._clipped(x, scale) - self._short)
            z_shift = (short - m) / (scale * self.short_se)
            s_shift = tail_surprise(z_shift)
            if s_shift > s:
                s, z = s_shift, z_shift
                unit, kind = scale * self.short_se, 0  # a shift is the level model's
        az, event = abs(z) * unit if self.recur_units else abs(z), s >= self.event
        if self.memory > 0 and event and self._routine(n, az, kind):
            s = routine_surprise(s, self.event)
        if self.density_window > 0:
            s = max(s, self._density(event))
        e = self._memo = _Evaluation(n, x, s, z, az, event, scale, floor, lag, kind)
        return e

    def _clipped(self, x: float, scale: float) -> float:
        # One spike must not read as a shift for the next several values.
        lim = self.clip * scale
        return max(self._level - lim, min(self._level + lim, x))

    def _routine(self, n: int, az: float, kind: int) -> bool:
        """Had this series at least ``recur_k`` episodes as large, lately?

        With ``recur_units``, episodes of the seasonal model are kept with a
        negative peak and compare only with the seasonal model's values.
        """
        az /= 1.0 + self.recur_tol
        need = self.recur_k
        if n - self._episode_last > self.episode_gap and self._episode_peak >= az:
            need -= 1  # this event starts a new episode: the open one counts as past
        seasonal = kind == 1 if self.recur_units else None
        return recurs(self._episodes, n, az, need, memory=self.memory, seasonal=seasonal)

    def _density(self, event: bool) -> float:
        count = self._event_count + event - self._events[self._event_pos]
        lam = max(self._event_rate, self.density_prior) * self.density_window
        s = poisson_surprise(count, lam)
        if self.density_recur and count <= self._dmax:
            return min(s, 0.9 * self.event)  # a count seen before is routine
        return s

    def _remember_event(self, e: _Evaluation) -> None:
        n, event = e.n, e.event
        if self.memory > 0 and event:
            self._episode_peak = add_event(
                self._episodes,
                self._episode_peak,
                self._episode_last,
                n,
                e.az,
                gap=self.episode_gap,
                memory=self.memory,
                seasonal=self.recur_units and self._episode_kind == 1,
            )
            self._episode_kind = e.kind
            self._episode_last = n
        if self.density_window > 0:
            pos = self._event_pos
            self._event_count += event - self._events[pos]
            self._events[pos] = event
            self._event_pos = (pos + 1) % self.density_window
            self._event_rate += self.density_alpha * (event - self._event_rate)
            if self.density_recur:
                self._remember_block()

    def _remember_block(self) -> None:
        """Keep the top event count of each block of ``density_window`` values."""
        self._dblock_max = max(self._dblock_max, self._event_count)
        if self._event_pos == 0:  # a block ends
            self._dblocks.append(self._dblock_max)
            self._dblock_max = 0
            if len(self._dblocks) > max(1, self.memory // self.density_window):
                self._dblocks.pop(0)
            top = sorted(self._dblocks)
            self._dmax = top[-min(self.recur_k, len(top))]

    def learn_one(self, x: dict[str, Any] | None, y: float) -> None:  # type: ignore[override]
        """Take ``y``, the next value of the series, into the model."""
        e = self._evaluate(y)
        self._memo = None
        n = self._n
        self._n = n + 1
        self._remember_event(e)
        if n == 0:
            self._level = self._short = self._prev = y
        if self._ring:
            lag = e.lag
            blend = self.season_beta > 0 and lag == lag
            self._ring[n % self.period] = lag + self.season_beta * (y - lag) if blend else y
            if n and lag == lag:
                # the seasonal model's typical error against the level model's
                ae = abs(y - lag)
                if self._season_mad > 0:
                    ae = min(ae, self.clip * max(MAD_TO_SD * self._season_mad, e.floor))
                    self._season_mad += self.alpha * (ae - self._season_mad)
                else:
                    self._season_mad = ae
                self._err_season += self.alpha * (ae - self._err_season)
                level_err = min(abs(y - self._level), self.clip * e.scale)
                self._err_level += self.alpha * (level_err - self._err_level)
        if n == 0:
            return
        a = self.alpha
        self._step += a * (min(abs(y - self._prev), self.clip * e.scale) - self._step)
        self._prev = y
        self._short += self.alpha_short * (self._clipped(y, e.scale) - self._short)
        dev = y - self._level
        if n < self.warm_up:  # plain running mean and deviation until warm
            self._level += dev / (n + 1)
            self._mad += (abs(dev) - self._mad) / n
            return
        lim = self.level_clip * e.scale
        self._level += a * max(-lim, min(lim, dev))
        self._mad += a * (min(abs(dev), self.clip * e.scale) - self._mad)


class _Evaluation(NamedTuple):
    """What scoring a value worked out, for learning it."""

    n: int  # the value's place in the series
    x: float
    surprise: float
    z: float  # signed deviation, in scales
    az: float
    event: bool
    scale: float
    floor: float
    lag: float  # the value one season ago (NaN without a season)
    kind: int  # which model judged it: 0 level (or shift), 1 season


# The learned state, field by field, with how each is read back.
STATE_FIELDS: tuple[tuple[str, Any], ...] = (
    ("_n", as_int),
    ("_level", as_float),
    ("_mad", as_float),
    ("_short", as_float),
    ("_prev", as_float),
    ("_step", as_float),
    ("_season_mad", as_float),
    ("_err_level", as_float),
    ("_err_season", as_float),
    ("_episode_peak", as_float),
    ("_episode_last", as_int),
    ("_event_pos", as_int),
    ("_event_count", as_int),
    ("_event_rate", as_float),
    ("_episode_kind", as_int),
    ("_dblock_max", as_int),
    ("_dmax", as_int),
)

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
from typing import Any, Self

from models.detectors.base import Detector
from models.schema import MetricSpec
from models.snapshot import as_bool, as_float, as_int, as_list, list_of

_LN10 = math.log(10.0)
_RSQRT2 = 1.0 / math.sqrt(2.0)
_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)
_MAD_TO_SD = math.sqrt(math.pi / 2.0)  # Gaussian sigma from the mean absolute deviation


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

    Use :meth:`score_one` then :meth:`learn_one` (a caller may skip learning a
    value, as :class:`~models.detect.SeriesMonitor` does during an anomaly: its
    events then do not count as this series' habits either), or :meth:`update`,
    which does both and returns a score in [0, 1): ``s / (s + alert)``, damped
    by ``damp`` for ``refractory`` values after an alert so that one event
    gives one alert.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> det = SurpriseDetector()
    >>> quiet = [det.update(10.0 + rng.gauss(0.0, 1.0)) for _ in range(500)]
    >>> max(quiet) < 0.5
    True
    >>> det.update(30.0) > 0.5, det.deviation > 0
    (True, True)

    Its learned state is plain data; rebuilt with the same parameters, it goes
    on exactly as the original:

    >>> twin = SurpriseDetector.from_state(det.to_state())
    >>> [twin.update(v) for v in quiet[:5]] == [det.update(v) for v in quiet[:5]]
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
        alert: float = 10.0,
        refractory: int = 400,
        damp: float = 0.1,
        floor: float = 0.0,
        rel_floor: float = 0.02,
        step_floor: float = 0.1,
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
        self.alert = alert
        self.refractory = refractory
        self.damp = damp
        self.floor = floor
        self.rel_floor = rel_floor
        self.step_floor = step_floor
        self._se_short = math.sqrt(alpha_short / (2.0 - alpha_short)) if alpha_short > 0 else 1.0
        self._n = 0  # values observed
        self._learnt = 0  # values learnt
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
        self._quiet = 0
        self._x = 0.0
        self._scale = self._floor = 0.0
        self._lag = math.nan
        self._az = 0.0
        self._event = False
        self.surprise = 0.0
        self.deviation = 0.0  # signed, in scales: + above what was expected

    @property
    def baseline(self) -> float:
        """The level the series is expected at."""
        return self._level

    @property
    def ready(self) -> bool:
        return self._learnt >= self.warm_up

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

    def to_state(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name, _ in _STATE}
        state["_episodes"] = [[last, peak] for last, peak in self._episodes]
        state["_ring"] = list(self._ring)
        state["_events"] = list(self._events)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> Self:
        det = cls(**params)
        for name, read in _STATE:
            setattr(det, name, read(state[name]))
        episodes = (as_list(e, 2) for e in as_list(state["_episodes"]))
        det._episodes = [(as_int(last), as_float(peak)) for last, peak in episodes]
        det._ring = list_of(as_float, state["_ring"], len(det._ring))
        det._events = list_of(as_bool, state["_events"], det.density_window)
        if det.density_window and not 0 <= det._event_pos < det.density_window:
            raise ValueError(f"event position {det._event_pos} out of range")
        return det

    def score_one(self, x: float) -> float:
        """The surprise of ``x`` given the past; sets :attr:`deviation` too."""
        n = self._n
        self._n = n + 1
        self._x = x
        self._event = False
        if self._learnt == 0:
            self.surprise = self.deviation = 0.0
            return 0.0
        m = self._level
        floor = self._floor = max(
            self.floor, self.rel_floor * abs(m), self.step_floor * self._step, 1e-12
        )
        scale = self._scale = max(_MAD_TO_SD * self._mad, floor)
        z = (x - m) / scale
        if self._ring:
            self._lag = self._ring[n % self.period]
            repeats = self._err_season < self.season_ratio * self._err_level
            if self._lag == self._lag and repeats and n > self.period + self.warm_up:
                z = (x - self._lag) / max(_MAD_TO_SD * self._season_mad, floor)
        if self._learnt < self.warm_up:
            self.surprise = self.deviation = 0.0
            return 0.0
        s = tail_surprise(z)
        if self.alpha_short > 0:
            short = self._short + self.alpha_short * (self._clipped(x) - self._short)
            z_shift = (short - m) / (scale * self._se_short)
            s_shift = tail_surprise(z_shift)
            if s_shift > s:
                s, z = s_shift, z_shift
        self._az, self._event = abs(z), s >= self.event
        if self.memory > 0 and self._event and self._routine(n):
            s = self.event * (1.0 - 1.0 / (2.0 + math.log1p(s)))
        if self.density_window > 0:
            s = max(s, self._density())
        self.surprise, self.deviation = s, z
        return s

    def _clipped(self, x: float) -> float:
        # One spike must not read as a shift for the next several values.
        lim = self.clip * self._scale
        return max(self._level - lim, min(self._level + lim, x))

    def _routine(self, n: int) -> bool:
        """Had this series at least ``recur_k`` episodes as large, lately?"""
        peaks = [p for last, p in self._episodes if n - last <= self.memory]
        if n - self._episode_last > self.episode_gap:  # this event starts a new episode
            peaks.append(self._episode_peak)
        return sum(p >= self._az for p in peaks) >= self.recur_k

    def _density(self) -> float:
        count = self._event_count + self._event - self._events[self._event_pos]
        lam = max(self._event_rate, self.density_prior) * self.density_window
        return poisson_surprise(count, lam)

    def _remember_event(self) -> None:
        n, event = self._n - 1, self._event
        if self.memory > 0 and event:
            if n - self._episode_last > self.episode_gap:
                if self._episode_peak > 0:
                    self._episodes.append((self._episode_last, self._episode_peak))
                self._episode_peak = 0.0
            self._episode_peak = max(self._episode_peak, self._az)
            self._episode_last = n
            while self._episodes and n - self._episodes[0][0] > self.memory:
                self._episodes.pop(0)
        if self.density_window > 0:
            pos = self._event_pos
            self._event_count += event - self._events[pos]
            self._events[pos] = event
            self._event_pos = (pos + 1) % self.density_window
            self._event_rate += self.density_alpha * (event - self._event_rate)

    def learn_one(self, x: float) -> None:
        """Take ``x``, the value last scored, into the model."""
        n = self._learnt
        self._learnt = n + 1
        self._remember_event()
        if n == 0:
            self._level = self._short = self._prev = x
        if self._ring:
            k = (self._n - 1) % self.period
            lag, self._ring[k] = self._lag, x
            if n and lag == lag:
                # the seasonal model's typical error against the level model's
                ae = abs(x - lag)
                if self._season_mad > 0:
                    ae = min(ae, self.clip * max(_MAD_TO_SD * self._season_mad, self._floor))
                    self._season_mad += self.alpha * (ae - self._season_mad)
                else:
                    self._season_mad = ae
                self._err_season += self.alpha * (ae - self._err_season)
                level_err = min(abs(x - self._level), self.clip * self._scale)
                self._err_level += self.alpha * (level_err - self._err_level)
        if n == 0:
            return
        a = self.alpha
        self._step += a * (min(abs(x - self._prev), self.clip * self._scale) - self._step)
        self._prev = x
        self._short += self.alpha_short * (self._clipped(x) - self._short)
        dev = x - self._level
        if n < self.warm_up:  # plain running mean and deviation until warm
            self._level += dev / (n + 1)
            self._mad += (abs(dev) - self._mad) / n
            return
        lim = self.level_clip * self._scale
        self._level += a * max(-lim, min(lim, dev))
        self._mad += a * (min(abs(dev), self.clip * self._scale) - self._mad)

    def update(self, x: float) -> float:
        """Observe and learn ``x``; its score in [0, 1), 0.5 at the alert level."""
        s = self.score_one(x)
        self.learn_one(x)
        score = s / (s + self.alert)
        if self._quiet > 0:
            self._quiet -= 1
            return score * self.damp
        if s >= self.alert:
            self._quiet = self.refractory
        return score


# The learned state, field by field, with how each is read back.
_STATE: tuple[tuple[str, Any], ...] = (
    ("_n", as_int),
    ("_learnt", as_int),
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
    ("_quiet", as_int),
    ("_x", as_float),
    ("_scale", as_float),
    ("_floor", as_float),
    ("_lag", as_float),
    ("_az", as_float),
    ("_event", as_bool),
    ("surprise", as_float),
    ("deviation", as_float),
)

"""Time to exhaustion of a bounded resource (memory, connections, disk).

A slow leak looks normal to a level detector: each minute is close to the
last. A straight line fitted over the recent past is not fooled, and says when
the resource will run out, long before it does.

A latency that creeps up for hours fools the level detector the same way:
:class:`CreepWatch` holds its recent level against a long-run baseline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from models.snapshot import (
    as_count,
    as_float,
    as_list,
    counters_state,
    list_of,
    load_counters,
    record_from_state,
    record_state,
)


class TimeToExhaustion:
    """Least-squares trend over a sliding event-time window.

    Parameters
    ----------
    limit
        The value at which the resource is exhausted.
    window_s
        How much recent history the line is fitted to.
    min_r2
        How well the line must fit before it is believed; a noisy plateau
        yields no forecast.
    min_points
        Points needed before the first forecast.

    Examples
    --------
    >>> tte = TimeToExhaustion(limit=1.0, window_s=600)
    >>> for minute in range(11):
    ...     tte.learn_one(60.0 * minute, 0.70 + 0.01 * minute)
    >>> round(tte.eta_one())  # 0.80 now, +0.01/min: 20 min to go
    1200
    """

    def __init__(
        self,
        limit: float = 1.0,
        window_s: float = 1200.0,
        min_r2: float = 0.8,
        min_points: int = 10,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.min_r2 = min_r2
        self.min_points = min_points
        self._points: deque[tuple[float, float]] = deque()

    def to_state(self) -> dict[str, Any]:
        return {"points": [[t, y] for t, y in self._points]}

    def load_state(self, state: dict[str, Any]) -> None:
        points = (list_of(as_float, p, 2) for p in as_list(state["points"]))
        self._points = deque((t, y) for t, y in points)

    def learn_one(self, t: float, y: float) -> None:
        self._points.append((t, y))
        while self._points[0][0] < t - self.window_s:
            self._points.popleft()

    def fit(self) -> tuple[float, float, float] | None:
        """Slope per second, fitted value now, and r² of the line; None if too few points."""
        n = len(self._points)
        if n < self.min_points:
            return None
        t0 = self._points[-1][0]
        st = sy = stt = syy = sty = 0.0
        for t, y in self._points:
            t -= t0
            st += t
            sy += y
            stt += t * t
            syy += y * y
            sty += t * y
        var_t = n * stt - st * st
        var_y = n * syy - sy * sy
        if var_t <= 0:
            return None
        cov = n * sty - st * sy
        slope = cov / var_t
        now = (sy - slope * st) / n  # the line's value at t0, the newest point
        r2 = cov * cov / (var_t * var_y) if var_y > 0 else 0.0
        return slope, now, r2

    def eta_one(self) -> float | None:
        """Seconds until the fitted line reaches the limit; None when it is not heading there."""
        fitted = self.fit()
        if fitted is None:
            return None
        slope, now, r2 = fitted
        if slope <= 0 or r2 < self.min_r2:
            return None
        return max(0.0, (self.limit - now) / slope)


@dataclass(frozen=True, slots=True)
class ExhaustionWarning:
    """A bounded resource forecast to run out within the horizon."""

    entity: str
    metric: str
    at: float  # event time of the warning
    eta: float  # event time at which the limit will be reached
    value: float
    slope_per_min: float
    cleared_at: float | None = None


class ExhaustionWatch:
    """Warns when the time to exhaustion falls within ``horizon_s``, for
    ``confirm`` windows in a row; clears when the forecast moves past twice the
    horizon or the trend disappears."""

    def __init__(
        self,
        entity: str,
        metric: str,
        limit: float,
        *,
        horizon_s: float = 7200.0,
        window_s: float = 1200.0,
        confirm: int = 3,
    ) -> None:
        self.entity = entity
        self.metric = metric
        self.horizon_s = horizon_s
        self.confirm = confirm
        self.forecast = TimeToExhaustion(limit, window_s)
        self.active: ExhaustionWarning | None = None
        self._streak = 0

    def to_state(self) -> dict[str, Any]:
        return {
            "forecast": self.forecast.to_state(),
            "active": None if self.active is None else record_state(self.active),
            "streak": self._streak,
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], entity: str, metric: str, limit: float, **settings: Any
    ) -> ExhaustionWatch:
        """The watch built with these arguments (as for ``__init__``), holding ``state``."""
        watch = cls(entity, metric, limit, **settings)
        watch.forecast.load_state(state["forecast"])
        active = state["active"]
        watch.active = None if active is None else record_from_state(ExhaustionWarning, active)
        watch._streak = as_count(state["streak"])
        return watch

    def update(self, at: float, value: float) -> ExhaustionWarning | None:
        self.forecast.learn_one(at, value)
        eta = self.forecast.eta_one()
        if self.active is None:
            self._streak = self._streak + 1 if eta is not None and eta <= self.horizon_s else 0
            if self._streak >= self.confirm and eta is not None:
                fitted = self.forecast.fit()
                slope = fitted[0] * 60 if fitted else 0.0
                self.active = ExhaustionWarning(
                    self.entity, self.metric, at, at + eta, value, slope
                )
                self._streak = 0
                return self.active
            return None
        self._streak = self._streak + 1 if eta is None or eta > 2 * self.horizon_s else 0
        if self._streak >= self.confirm:
            w = self.active
            self.active = None
            self._streak = 0
            return ExhaustionWarning(
                w.entity, w.metric, w.at, w.eta, value, w.slope_per_min, cleared_at=at
            )
        return None


@dataclass(frozen=True, slots=True)
class CreepWarning:
    """A series drifting, slowly but for long, away from its long-run baseline."""

    entity: str
    metric: str
    onset: float  # start of the first window of the drift
    at: float  # event time at which it was known
    value: float  # the recent level
    baseline: float  # the long-run level it drifted from
    ended_at: float | None = None

    @property
    def direction(self) -> str:
        return "high" if self.value >= self.baseline else "low"


class LatencyCreep:
    """A recent level against a long-run baseline, both exponentially weighted.

    The per-series level detector follows slow change on purpose (it must
    follow the daily cycle), so a latency that creeps up by a few percent an
    hour never stands out against it. Here the baseline forgets over hours
    and is frozen while the series is judged drifting, and the recent level
    is smoothed over minutes, so that a blip of a few seconds cannot move it.

    Parameters
    ----------
    fast
        Weight of the newest value in the recent level (1/30: five minutes of
        10 s windows).
    slow
        Weight of the newest value in the long-run baseline (1/720: two hours).
    warm_up
        Values to learn before judging; until then the drift is 0.

    Examples
    --------
    >>> creep = LatencyCreep(warm_up=10)
    >>> for _ in range(100):
    ...     creep.learn_one(100.0)
    >>> for step in range(200):  # +0.5 ms per window
    ...     creep.update_recent(100.0 + 0.5 * step)
    >>> round(creep.recent) > 150 and round(creep.baseline) == 100
    True
    """

    def __init__(self, fast: float = 1 / 30, slow: float = 1 / 720, warm_up: int = 180) -> None:
        self.fast = fast
        self.slow = slow
        self.warm_up = warm_up
        # The warm-up makes a plain average, not a baseline stuck near the
        # very first value; exponential forgetting takes over after it.
        self._recent = 0.0
        self._baseline = 0.0
        self._n_recent = 0
        self._n = 0

    @property
    def recent(self) -> float:
        return self._recent

    @property
    def baseline(self) -> float:
        return self._baseline

    @property
    def ready(self) -> bool:
        return self._n >= self.warm_up

    def to_state(self) -> dict[str, Any]:
        return {
            "recent": self._recent,
            "baseline": self._baseline,
            "n_recent": self._n_recent,
            "n": self._n,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._recent = as_float(state["recent"])
        self._baseline = as_float(state["baseline"])
        self._n_recent = as_count(state["n_recent"])
        self._n = as_count(state["n"])

    def update_recent(self, y: float) -> None:
        self._n_recent += 1
        self._recent += max(self.fast, 1 / self._n_recent) * (y - self._recent)

    def restart_recent(self, y: float) -> None:
        """The recent level from ``y`` on: what came before is over."""
        self._recent = y

    def learn_baseline(self, y: float) -> None:
        self._n += 1
        weight = 1 / self._n if self._n <= self.warm_up else self.slow
        self._baseline += max(self.slow, weight) * (y - self._baseline)

    def learn_one(self, y: float) -> None:
        """Fold ``y`` into both the recent level and the long-run baseline."""
        self.update_recent(y)
        self.learn_baseline(y)


class CreepWatch:
    """Warns when a series' recent level has drifted past its long-run baseline
    by ``rel`` of it (and at least ``floor``) in the harmful direction for
    ``confirm`` windows in a row; the warning ends after ``clear`` windows back
    within half that margin. While warning, the baseline does not learn, so
    that the drift never becomes the new normal; after ``max_hold`` windows it
    relearns anyway."""

    def __init__(
        self,
        entity: str,
        metric: str,
        *,
        floor: float,
        lower_is_worse: bool = False,
        rel: float = 0.5,
        confirm: int = 30,
        clear: int = 6,
        max_hold: int = 2160,
        fast: float = 1 / 30,
        slow: float = 1 / 720,
        warm_up: int = 180,
    ) -> None:
        self.entity = entity
        self.metric = metric
        self.floor = floor
        self.lower_is_worse = lower_is_worse
        self.rel = rel
        self.confirm = confirm
        self.clear = clear
        self.max_hold = max_hold
        self.level = LatencyCreep(fast, slow, warm_up)
        self.active: CreepWarning | None = None
        self._streak = 0
        self._calm = 0
        self._held = 0
        self._first = 0.0

    def drift(self) -> float:
        """How far the recent level is from the baseline the harmful way, in margins."""
        return self._drift_of(self.level.recent)

    def _drift_of(self, value: float) -> float:
        if not self.level.ready:
            return 0.0
        base = self.level.baseline
        margin = max(self.rel * abs(base), self.floor)
        delta = value - base
        return (-delta if self.lower_is_worse else delta) / margin

    def to_state(self) -> dict[str, Any]:
        return {
            "level": self.level.to_state(),
            "active": None if self.active is None else record_state(self.active),
            **counters_state(self),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], entity: str, metric: str, **settings: Any
    ) -> CreepWatch:
        """The watch built with these arguments (as for ``__init__``), holding ``state``."""
        watch = cls(entity, metric, **settings)
        watch.level.load_state(state["level"])
        active = state["active"]
        watch.active = None if active is None else record_from_state(CreepWarning, active)
        load_counters(watch, state)
        return watch

    def update(self, start: float, at: float, value: float) -> CreepWarning | None:
        """Fold one window in; return the warning if it just started or ended."""
        if self.active is None:
            self.level.update_recent(value)
            if self.drift() >= 1.0:
                if self._streak == 0:
                    self._first = start
                self._streak += 1
                if self._streak >= self.confirm:
                    self._streak, self._calm, self._held = 0, 0, 0
                    self.active = CreepWarning(
                        self.entity,
                        self.metric,
                        self._first,
                        at,
                        self.level.recent,
                        self.level.baseline,
                    )
                    return self.active
                return None
            # Learn only what is not drifting: the recent level has been
            # updated already, the baseline takes the value now.
            self._streak = 0
            self.level.learn_baseline(value)
            return None
        self._held += 1
        if self._held >= self.max_hold:
            self.level.learn_one(value)
        else:
            self.level.update_recent(value)
        # Back within half the margin: the smoothed level, or the series
        # itself. After an outage's spike the smoothed level takes half an
        # hour to come down; the series is back at once.
        back = min(self.drift(), self._drift_of(value)) < 0.5
        self._calm = self._calm + 1 if back else 0
        if self._calm >= self.clear:
            self.level.restart_recent(value)
            ended = CreepWarning(
                self.entity,
                self.metric,
                self.active.onset,
                self.active.at,
                self.level.recent,
                self.level.baseline,
                ended_at=at,
            )
            self.active = None
            self._calm = 0
            return ended
        return None

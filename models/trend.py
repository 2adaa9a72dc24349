"""Time to exhaustion of a bounded resource (memory, connections, disk).

A slow leak looks normal to a level detector: each minute is close to the
last. A straight line fitted over the recent past is not fooled, and says when
the resource will run out, long before it does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


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

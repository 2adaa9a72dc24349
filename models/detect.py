"""Online anomaly detection per series.

:class:`AdaptiveZScore` learns a series' level and spread while running, with
exponential forgetting so that it follows the slow daily cycle but not a sudden
break. :class:`SeriesMonitor` turns its scores into anomaly onsets and ends,
in the direction that hurts, and stops learning while a series is anomalous so
that an outage never becomes the new normal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from river import stats

from models.schema import Bad, MetricSpec


class AdaptiveZScore:
    """Signed distance of a value from an exponentially weighted baseline.

    Parameters
    ----------
    fading_factor
        Weight of the newest value in the running mean and variance. 0.02 on
        10 s windows forgets most of what is older than half an hour.
    floor
        Smallest spread, in the series' unit: a near-constant series does not
        score high on its first wiggle.
    rel_floor
        Smallest spread relative to the baseline level.
    warm_up
        Values to learn before scoring; until then the score is 0.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> model = AdaptiveZScore(floor=0.01)
    >>> for _ in range(200):
    ...     model.learn_one(0.95 + rng.gauss(0, 0.002))
    >>> abs(model.score_one(0.95)) < 1
    True
    >>> model.score_one(0.50) < -10
    True
    """

    def __init__(
        self,
        fading_factor: float = 0.02,
        floor: float = 0.0,
        rel_floor: float = 0.02,
        warm_up: int = 30,
    ) -> None:
        self.fading_factor = fading_factor
        self.floor = floor
        self.rel_floor = rel_floor
        self.warm_up = warm_up
        self._mean = stats.EWMean(fading_factor)
        self._var = stats.EWVar(fading_factor)
        self._n = 0

    @property
    def baseline(self) -> float:
        return float(self._mean.get())

    @property
    def ready(self) -> bool:
        return self._n >= self.warm_up

    def learn_one(self, y: float) -> None:
        self._mean.update(y)
        self._var.update(y)
        self._n += 1

    def score_one(self, y: float) -> float:
        """How many spreads ``y`` lies above (positive) or below the baseline."""
        if self._n < self.warm_up:
            return 0.0
        mean = self._mean.get()
        # The running variance can come out a hair below zero on a flat series.
        spread = max(self._var.get(), 0.0) ** 0.5
        scale = max(spread, self.floor, self.rel_floor * abs(mean))
        if scale <= 0:
            return 0.0
        return float((y - mean) / scale)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A series that left its baseline in the harmful direction."""

    entity: str
    metric: str
    onset: float  # start of the first anomalous window
    at: float  # event time at which it was known
    value: float
    baseline: float
    score: float
    ended_at: float | None = None

    @property
    def direction(self) -> str:
        return "high" if self.value >= self.baseline else "low"


class SeriesMonitor:
    """Anomaly state of one series.

    It enters anomaly after ``confirm`` windows scoring at least ``enter`` in a
    harmful direction and leaves after ``clear`` windows back under ``leave``.
    While anomalous it does not learn, so the baseline of before the fault is
    kept for judging recovery; after ``max_hold`` windows it relearns anyway,
    so that a permanent change does not stay anomalous forever.
    """

    __slots__ = (
        "_calm",
        "_first",
        "_held",
        "_streak",
        "active",
        "clear",
        "confirm",
        "detector",
        "enter",
        "entity",
        "leave",
        "max_hold",
        "metric",
        "spec",
    )

    def __init__(
        self,
        entity: str,
        spec: MetricSpec,
        *,
        enter: float = 6.0,
        leave: float = 3.0,
        confirm: int = 1,
        clear: int = 3,
        max_hold: int = 2160,
        fading_factor: float = 0.02,
        warm_up: int = 30,
    ) -> None:
        self.entity = entity
        self.metric = spec.name
        self.spec = spec
        self.enter = enter
        self.leave = leave
        self.confirm = confirm
        self.clear = clear
        self.max_hold = max_hold
        # A ratio's spread does not grow with its level; a rate's or a latency's does.
        rel_floor = 0.0 if spec.ratio else 0.02
        self.detector = AdaptiveZScore(fading_factor, spec.floor, rel_floor, warm_up)
        self.active: Anomaly | None = None
        self._streak = 0
        self._calm = 0
        self._held = 0
        self._first = 0.0

    def _harm(self, z: float) -> float:
        """The part of the score that points in the harmful direction."""
        bad = self.spec.bad
        if bad is Bad.HIGH:
            return z
        if bad is Bad.LOW:
            return -z
        return abs(z)

    def update(self, start: float, at: float, value: float) -> Anomaly | None:
        """Score one window; return the anomaly if it just started or ended."""
        z = self.detector.score_one(value)
        harm = self._harm(z)
        if self.active is None:
            if harm >= self.enter:
                if self._streak == 0:
                    self._first = start
                self._streak += 1
                if self._streak >= self.confirm:
                    self._streak, self._calm, self._held = 0, 0, 0
                    self.active = Anomaly(
                        self.entity, self.metric, self._first, at, value, self.detector.baseline, z
                    )
                    return self.active
                return None
            self._streak = 0
            self.detector.learn_one(value)
            return None
        self._held += 1
        if harm < self.leave:
            self._calm += 1
        else:
            self._calm = 0
        if self._held >= self.max_hold:
            self.detector.learn_one(value)
        if self._calm >= self.clear:
            ended = replace(
                self.active, value=value, baseline=self.detector.baseline, score=z, ended_at=at
            )
            self.active = None
            self._calm = 0
            return ended
        return None

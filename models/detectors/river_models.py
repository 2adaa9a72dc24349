"""River's own anomaly detectors, run through Foreshock's detector contract.

A River detector's score has its own scale (a probability, a z, a path
length); the monitor needs a surprise in ``-log10`` units, a signed
deviation and a baseline. ``RiverDetector`` gives them:

- the surprise follows from what the score is (its ``Scale``): a
  probability, a z, a forecast error judged in the spread of past errors,
  or, for any other scale, how far it lies above the model's past scores;
- the deviation and the baseline come from a robust running level and
  spread of the values themselves.

River models are objects, not data: the state kept is the last ``history``
values learnt, and a restored detector learns them again. A model that
remembers further back than that comes back a little different; the
detectors here forget sooner or keep windows no longer than that.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Self

from models.detectors.base import Assessment, Detector, season_of_rows
from models.detectors.surprise import tail_surprise
from models.schema import MetricSpec
from models.snapshot import as_count, as_float, list_of

if TYPE_CHECKING:
    from river.base import Estimator

# River (and the scipy it imports) is loaded when a model is first made, not
# when the detectors are named: a command that makes none starts in a blink.

_MAD_TO_SD = math.sqrt(math.pi / 2.0)
_MAX_SURPRISE = 300.0  # one chance in 1e300: as sure as a float can say


def _upper_tail(z: float) -> float:
    """``-log10 P(Z >= z)`` for a standard normal ``Z``; 0 at or below 0."""
    if z <= 0:
        return 0.0
    if z < 8.0:
        return -math.log10(max(0.5 * math.erfc(z / math.sqrt(2.0)), 1e-300))
    return (z * z / 2.0) / math.log(10.0) + math.log10(z * math.sqrt(2.0 * math.pi))


class Scale(Enum):
    """What a River model's score is, and so how it becomes a surprise."""

    PROBABILITY = "probability"  # how sure the value is abnormal, in [0, 1]
    Z = "z"  # deviations from the mean, in standard deviations
    FORECAST = "forecast"  # the model forecasts; the error is judged in its own spread
    RELATIVE = "relative"  # any other scale: judged against the model's past scores


def _gaussian(period: int) -> Estimator:
    from river import anomaly

    return anomaly.GaussianScorer(window_size=500)


def _sad(period: int) -> Estimator:
    from river import anomaly

    return anomaly.StandardAbsoluteDeviation()


def _snarimax(period: int) -> Estimator:
    from river import time_series

    return time_series.SNARIMAX(p=2, d=1, q=1)


def _half_space_trees(period: int) -> Estimator:
    from river import anomaly, compose, preprocessing

    return compose.Pipeline(
        preprocessing.MinMaxScaler(),
        anomaly.HalfSpaceTrees(n_trees=10, height=6, window_size=100, seed=1),
    )


def _holt_winters(period: int) -> Estimator:
    from river import time_series

    seasonal = period > 1
    return time_series.HoltWinters(
        alpha=0.3, beta=0.05, gamma=0.1 if seasonal else None, seasonality=period if seasonal else 0
    )


class RiverDetector(Detector):
    """A River model (``model``, by name in ``MODELS``) as a Foreshock detector.

    River's ``PredictiveAnomalyDetection`` updates its error statistics in
    ``score_one``; forecasters are wrapped here the same way (the forecast
    error, judged in the spread of past errors) with scoring left pure.

    >>> import random
    >>> rng = random.Random(3)
    >>> det = RiverDetector("river-sad")
    >>> for _ in range(300):
    ...     det.learn_one(None, 10.0 + rng.gauss(0.0, 1.0))
    >>> det.score_one(None, 10.5) < 3, det.score_one(None, 30.0) > 6
    (True, True)
    >>> det.assess(30.0).deviation > 0
    True

    Restored from its state, it scores as the original:

    >>> twin = RiverDetector.from_state(det.to_state(), model="river-sad")
    >>> twin.score_one(None, 14.0) == det.score_one(None, 14.0)
    True
    """

    # River models by name: a factory (given the season length in values) and its score's scale.
    MODELS: ClassVar[dict[str, tuple[Callable[[int], Estimator], Scale]]] = {
        "river-gaussian": (_gaussian, Scale.PROBABILITY),
        "river-sad": (_sad, Scale.Z),
        "river-holt-winters": (_holt_winters, Scale.FORECAST),
        "river-snarimax": (_snarimax, Scale.FORECAST),
        "river-hst": (_half_space_trees, Scale.RELATIVE),
    }

    def __init__(
        self,
        model: str = "river-sad",
        *,
        period: int = 0,
        alpha: float = 0.02,
        warm_up: int = 30,
        history: int = 1000,
        floor: float = 1e-9,
    ) -> None:
        self.model = model
        self.period = period
        self.alpha = alpha
        self.warm_up = warm_up
        self.history = history
        self.floor = floor
        factory, self.scale = self.MODELS[model]
        self._model: Any = factory(period)
        self._seen: deque[float] = deque(maxlen=history)
        self._n = 0
        self._level = self._mad = 0.0  # of the values
        self._mean = self._spread = 0.0  # of the model's scores (or forecast errors)

    def _raw(self, y: float) -> float:
        """The model's score of ``y``, or for a forecaster its error."""
        try:
            if self.scale is Scale.FORECAST:
                return y - float(self._model.forecast(horizon=1)[0])
            if self.scale is Scale.RELATIVE:
                return float(self._model.score_one({"y": y}))
            return float(self._model.score_one(None, y))
        except (IndexError, ZeroDivisionError):
            return math.nan  # a forecaster asked before its first season is in

    def assess(self, y: float) -> Assessment:
        raw = self._raw(y)
        if self._n < self.warm_up or raw != raw:
            return Assessment(0.0, 0.0)
        spread = max(_MAD_TO_SD * self._spread, 1e-12)
        deviation = (y - self._level) / max(_MAD_TO_SD * self._mad, self.floor)
        if self.scale is Scale.PROBABILITY:
            surprise = -math.log10(max(1.0 - raw, 1e-300))
        elif self.scale is Scale.Z:
            surprise = tail_surprise(raw)
        elif self.scale is Scale.FORECAST:
            surprise = tail_surprise(raw / spread)
            deviation = raw / spread
        else:
            surprise = _upper_tail((raw - self._mean) / spread)
        return Assessment(min(surprise, _MAX_SURPRISE), deviation)

    def learn_one(self, x: dict[str, Any] | None, y: float) -> None:  # type: ignore[override]
        raw = self._raw(y)
        if self.scale is Scale.FORECAST:
            try:
                self._model.learn_one(y)
            except ZeroDivisionError:
                # Holt-Winters divides its first season by its mean level:
                # one that averages 0 cannot start it, so start again after it.
                self._model = self.MODELS[self.model][0](self.period)
        elif self.scale is Scale.RELATIVE:
            self._model.learn_one({"y": y})
        else:
            self._model.learn_one(None, y)
        self._seen.append(y)
        n = self._n = self._n + 1
        if raw != raw:
            raw = 0.0 if self.scale is Scale.FORECAST else self._mean
        a = max(self.alpha, 1.0 / n)
        if n == 1:
            self._level = y
        self._mad += a * (abs(y - self._level) - self._mad)
        self._level += a * (y - self._level)
        centre = 0.0 if self.scale is Scale.FORECAST else self._mean
        self._spread += a * (abs(raw - centre) - self._spread)
        self._mean += a * (raw - self._mean)

    @property
    def baseline(self) -> float:
        return self._level

    @property
    def ready(self) -> bool:
        return self._n >= self.warm_up

    @classmethod
    def params_for(cls, spec: MetricSpec, *, fading_factor: float, warm_up: int) -> dict[str, Any]:
        return {"alpha": fading_factor, "warm_up": warm_up, "floor": spec.floor}

    @classmethod
    def params_for_rows(cls, step_s: float) -> dict[str, Any]:
        return season_of_rows(step_s)

    def to_state(self) -> dict[str, Any]:
        return {"seen": list(self._seen), "n": self._n}

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> Self:
        det = cls(**params)
        seen = list_of(as_float, state["seen"])
        if len(seen) > det.history:
            raise ValueError(f"{len(seen)} values kept, at most {det.history}")
        for y in seen:
            det.learn_one(None, y)
        det._n = as_count(state["n"])
        return det


def river_detector(model: str) -> type[RiverDetector]:
    """A ``RiverDetector`` class bound to one River model, to register by name."""

    class Bound(RiverDetector):
        def __init__(self, **params: Any) -> None:
            params.pop("model", None)
            super().__init__(model, **params)

    Bound.__name__ = Bound.__qualname__ = "".join(p.title() for p in model.split("-")) + "Detector"
    return Bound

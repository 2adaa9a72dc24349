"""The contract of a per-series anomaly detector.

Every detector is a River ``SupervisedAnomalyDetector`` over one series of
floats: the features ``x`` are unused (``None``), the value is ``y``.

- ``score_one(x, y)`` says how surprising ``y`` is given the past, as
  ``-log10`` of its probability (a surprise of 6 is one chance in a
  million). It never changes the detector.
- ``assess(y)`` gives the same surprise with the signed ``deviation`` of
  ``y`` from what was expected (in the detector's spreads, positive above):
  the explanation an anomaly carries.
- ``learn_one(x, y)`` takes ``y`` into the model. Values are learnt in
  order; a caller may skip one (``SeriesMonitor`` does while a series is
  anomalous, so that an outage never becomes the new normal).
- ``baseline`` is the level the series is expected at, ``ready`` whether the
  detector has learnt enough to be believed.
- ``to_state()`` gives the learned state as plain data; ``from_state(state,
  **params)`` rebuilds the detector from it with the given parameters.
- ``params_for(spec, ...)`` says how a detector is built for one series of a
  metric in the pipeline, ``params_for_rows(step_s)`` for a series sampled
  every ``step_s`` seconds (a NAB file): the only places the two differ.

A new detector implements this in a module of this folder and is named in
``models.detectors.DETECTORS``; ``PipelineConfig`` picks one per metric.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, NamedTuple, Self

from river.base import SupervisedAnomalyDetector

from models.schema import MetricSpec


def season_of_rows(step_s: float) -> dict[str, Any]:
    """A daily season in rows for a series sampled every ``step_s`` seconds
    (``{}`` if the step is unknown).

    >>> season_of_rows(300.0), season_of_rows(0.0)
    ({'period': 288}, {})
    """
    return {"period": max(2, round(86400.0 / step_s))} if step_s > 0 else {}


class Assessment(NamedTuple):
    surprise: float  # -log10 of how unlikely the value is
    deviation: float  # signed, in spreads: + above what was expected


class Detector(SupervisedAnomalyDetector):
    def score_one(self, x: dict[str, Any] | None, y: float) -> float:  # type: ignore[override]
        """The surprise of ``y``, ``-log10`` of how unlikely it is."""
        return self.assess(y).surprise

    @abstractmethod
    def assess(self, y: float) -> Assessment:
        """The surprise of ``y`` and its signed deviation; changes nothing."""

    @abstractmethod
    def learn_one(self, x: dict[str, Any] | None, y: float) -> None:  # type: ignore[override]
        """Take ``y``, the next value of the series, into the model."""

    @property
    @abstractmethod
    def baseline(self) -> float:
        """The level the series is expected at."""

    @property
    @abstractmethod
    def ready(self) -> bool:
        """Whether enough has been learnt to judge."""

    @abstractmethod
    def to_state(self) -> dict[str, Any]:
        """The learned state, as plain data."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> Self:
        """A detector built with ``params``, holding ``state``; ``TypeError``,
        ``ValueError`` or ``KeyError`` if the state is not one of its own."""

    @classmethod
    @abstractmethod
    def params_for(cls, spec: MetricSpec, *, fading_factor: float, warm_up: int) -> dict[str, Any]:
        """The parameters of this detector for one series of ``spec``'s metric."""

    @classmethod
    def params_for_rows(cls, step_s: float) -> dict[str, Any]:
        """The parameters of this detector for a series sampled every
        ``step_s`` seconds, with no metric known (a NAB file)."""
        return {}

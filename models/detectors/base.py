"""The contract of a per-series anomaly detector.

Shaped like River's ``anomaly.base.AnomalyDetector`` (``learn_one`` and
``score_one``), for one series of floats, one window value at a time:

- ``score_one(x)`` says how surprising ``x`` is given the past, as
  ``-log10`` of its probability (a surprise of 6 is one chance in a
  million), and sets ``deviation``: the signed departure of ``x`` from what
  was expected (positive above). Every value is scored, once, in order; a
  detector may keep what it worked out about ``x`` for ``learn_one``.
- ``learn_one(x)`` takes the value just scored into the model. A caller may
  skip it (``SeriesMonitor`` does while a series is anomalous, so that an
  outage never becomes the new normal).
- ``baseline`` is the level the series is expected at, ``ready`` whether the
  detector has learnt enough to be believed.
- ``to_state()`` gives the learned state as plain data; ``from_state(state,
  **params)`` rebuilds the detector from it with the given parameters.
- ``params_for(spec, ...)`` says how a detector is built for one series of a
  metric, from the pipeline's settings.

A new detector implements this in a module of this folder and is named in
``models.detectors.DETECTORS``; ``PipelineConfig.detector`` picks it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self

from models.schema import MetricSpec


class Detector(ABC):
    deviation: float

    @abstractmethod
    def score_one(self, x: float) -> float:
        """The surprise of ``x``, ``-log10`` of how unlikely it is; sets ``deviation``."""

    @abstractmethod
    def learn_one(self, x: float) -> None:
        """Take ``x``, the value last scored, into the model."""

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

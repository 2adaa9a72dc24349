"""Anomaly state per series.

A detector (``models/detectors/``, the surprise detector by default) scores
each window value of a series as a surprise; :class:`SeriesMonitor` turns
surprises into anomaly onsets and ends, in the direction that hurts, and
stops learning while a series is anomalous so that an outage never becomes
the new normal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from models.detectors import DETECTORS, Detector
from models.detectors.surprise import SurpriseDetector, poisson_surprise, tail_surprise
from models.schema import Bad, MetricSpec
from models.snapshot import (
    as_dict,
    counters_state,
    load_counters,
    record_from_state,
    record_state,
)

# Re-exported for callers that still import them from here.
__all__ = ["Anomaly", "SeriesMonitor", "SurpriseDetector", "poisson_surprise", "tail_surprise"]


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A series that left its baseline in the harmful direction."""

    entity: str
    metric: str
    onset: float  # start of the first anomalous window
    at: float  # event time at which it was known
    value: float
    baseline: float
    deviation: float  # signed, in the detector's spreads: + above the baseline
    ended_at: float | None = None

    @property
    def direction(self) -> str:
        return "high" if self.value >= self.baseline else "low"


class SeriesMonitor:
    """Anomaly state of one series.

    It enters anomaly after ``confirm`` windows at least as surprising as a
    deviation of ``enter`` spreads in a harmful direction, and leaves after
    ``clear`` windows back under ``leave`` spreads' worth.
    While anomalous it does not learn, so the baseline of before the fault is
    kept for judging recovery; after ``max_hold`` windows it relearns anyway,
    so that a permanent change does not stay anomalous forever.
    """

    __slots__ = (
        "_calm",
        "_detector",
        "_enter",
        "_first",
        "_held",
        "_leave",
        "_params",
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
        detector: str = "surprise",
    ) -> None:
        self.entity = entity
        self.metric = spec.name
        self.spec = spec
        self.enter = enter
        self.leave = leave
        self._enter = tail_surprise(enter)
        self._leave = tail_surprise(leave)
        self.confirm = confirm
        self.clear = clear
        self.max_hold = max_hold
        self._detector = detector
        kind = DETECTORS[detector]
        self._params = kind.params_for(spec, fading_factor=fading_factor, warm_up=warm_up)
        self.detector: Detector = kind(**self._params)
        self.active: Anomaly | None = None
        self._streak = 0
        self._calm = 0
        self._held = 0
        self._first = 0.0

    @property
    def detector_name(self) -> str:
        """The detector's name in ``models.detectors.DETECTORS``."""
        return self._detector

    @property
    def baseline(self) -> float:
        """The level the series is expected at."""
        return self.detector.baseline

    def _harm(self, surprise: float, z: float) -> float:
        """The surprise, if it points in the harmful direction."""
        bad = self.spec.bad
        if (bad is Bad.HIGH and z <= 0) or (bad is Bad.LOW and z >= 0):
            return 0.0
        return surprise

    def surprising(self, value: float) -> bool:
        """Whether ``value`` would start to count toward an anomaly; learns nothing."""
        surprise, z = self.detector.assess(value)
        return self._harm(surprise, z) >= self._enter

    def update(self, start: float, at: float, value: float) -> Anomaly | None:
        """Score one window; return the anomaly if it just started or ended."""
        detector = self.detector
        surprise, z = detector.assess(value)
        harm = self._harm(surprise, z)
        if self.active is None:
            if harm >= self._enter:
                if self._streak == 0:
                    self._first = start
                self._streak += 1
                if self._streak >= self.confirm:
                    self._streak, self._calm, self._held = 0, 0, 0
                    self.active = Anomaly(
                        self.entity, self.metric, self._first, at, value, detector.baseline, z
                    )
                    return self.active
                return None
            self._streak = 0
            detector.learn_one(None, value)
            return None
        self._held += 1
        if harm < self._leave:
            self._calm += 1
        else:
            self._calm = 0
        if self._held >= self.max_hold:
            detector.learn_one(None, value)
        if self._calm >= self.clear:
            ended = replace(
                self.active, value=value, baseline=detector.baseline, deviation=z, ended_at=at
            )
            self.active = None
            self._calm = 0
            return ended
        return None

    def to_state(self) -> dict[str, Any]:
        return {
            "detector": self._detector,
            "learned": self.detector.to_state(),
            "active": None if self.active is None else record_state(self.active),
            **counters_state(self),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], entity: str, spec: MetricSpec, **settings: Any
    ) -> SeriesMonitor:
        """The monitor of ``entity``'s ``spec`` series, built with ``settings``
        (as for ``__init__``), holding ``state``."""
        mon = cls(entity, spec, **settings)
        if state["detector"] != mon._detector:
            raise ValueError(f"learnt by detector {state['detector']!r}, not {mon._detector!r}")
        learned = as_dict(state["learned"])
        mon.detector = DETECTORS[mon._detector].from_state(learned, **mon._params)
        active = state["active"]
        mon.active = None if active is None else record_from_state(Anomaly, active)
        load_counters(mon, state)
        return mon

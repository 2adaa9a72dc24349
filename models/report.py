"""The hand-off between the stages: what detection tells correlation.

Detection decides each window and sends a ``WindowReport`` of it: the
``Note``s of evidence that started or stopped (an anomaly, a forecast of
exhaustion, a creep, a telemetry gap) and the share of users failing on each
user-facing series. In the Faust app it crosses Kafka, as JSON of plain data
(``to_dict``/``parse``), validated on arrival.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from models.evidence import Evidence
from models.schema import Rejection
from models.snapshot import as_bool, as_finite, as_list, as_str
from models.window import SeriesKey


@dataclass(frozen=True, slots=True)
class LatePoints:
    """Points that arrived for a window already decided."""

    entity: str
    points: int
    at: float


@dataclass(frozen=True, slots=True)
class Note:
    """A component started or stopped showing one piece of evidence."""

    evidence: Evidence
    onset: float
    active: bool

    @property
    def entity(self) -> str:
        return self.evidence.entity


@dataclass(frozen=True, slots=True)
class WindowReport:
    """What one source decided about one window: the hand-off to correlation."""

    source: str
    start: float
    decided_at: float
    notes: tuple[Note, ...]
    # Share of users failing, for each user-facing series anomalous in this window.
    losses: dict[SeriesKey, float]
    # A look at a window still open, from the part of it delivered by
    # ``decided_at``: losses only, which may raise an open incident's SEV
    # before the window closes; the window's own report still follows.
    early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "start": self.start,
            "decided_at": self.decided_at,
            "notes": [[*n.evidence.to_list(), n.onset, n.active] for n in self.notes],
            "losses": [[e, m, lost] for (e, m), lost in self.losses.items()],
            **({"early": True} if self.early else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowReport:
        """The report in its plain form; ``TypeError``/``ValueError`` if it is not one.

        >>> note = Note(Evidence("a", "x"), 0.0, True)
        >>> r = WindowReport("p0", 10.0, 15.0, (note,), {("a", "x"): 0.5})
        >>> WindowReport.from_dict(r.to_dict()) == r
        True
        >>> early = WindowReport("p0", 20.0, 25.0, (), {("a", "x"): 0.5}, early=True)
        >>> WindowReport.from_dict(early.to_dict()).early
        True
        """
        notes = []
        for raw in as_list(d["notes"]):
            entity, metric, kind, onset, active = as_list(raw, 5)
            evidence = Evidence.from_list([entity, metric, kind])
            notes.append(Note(evidence, as_finite(onset), as_bool(active)))
        losses = {}
        for raw in as_list(d["losses"]):
            entity, metric, lost = as_list(raw, 3)
            losses[(as_str(entity), as_str(metric))] = as_finite(lost)
        return cls(
            as_str(d["source"]),
            as_finite(d["start"]),
            as_finite(d["decided_at"]),
            tuple(notes),
            losses,
            as_bool(d.get("early", False)),
        )

    @classmethod
    def parse(cls, raw: bytes) -> WindowReport | Rejection:
        """A report from the wire, or why it is not one.

        >>> WindowReport.parse(b'{"source": "p0"}').reason
        'not_a_window_report'
        """
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict):
                raise TypeError(f"a JSON {type(doc).__name__}, not an object")
            return cls.from_dict(doc)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
            return Rejection("not_a_window_report", detail)

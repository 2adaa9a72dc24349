"""Evidence: what a component shows (an anomaly, a forecast, a creep, a
telemetry gap), and the suspects correlation names from it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from models.changes import ChangeEvent
from models.snapshot import as_float, as_list, as_str


class EvidenceKind(StrEnum):
    """What a component shows: the kinds of evidence detection reports."""

    ANOMALY = "anomaly"  # a series left its baseline the harmful way
    # Traffic (a series that may move either way) fell or rose far from its
    # baseline: a symptom that travels along the graph, rarely a cause.
    DROP = "drop"
    SURGE = "surge"
    EXHAUSTION = "exhaustion"  # a bounded resource forecast to run out
    CREEP = "creep"  # a slow drift from the long-run baseline
    GAP = "telemetry_gap"  # an entity stopped reporting (no evidence of failure)

    @property
    def traffic(self) -> bool:
        return self in (EvidenceKind.DROP, EvidenceKind.SURGE)


@dataclass(frozen=True, slots=True)
class Evidence:
    """One piece of evidence: a series of an entity, and what it shows.

    A telemetry gap is about a whole entity: its ``metric`` is empty.

    >>> str(Evidence("redis", "memory_used_ratio", EvidenceKind.EXHAUSTION))
    'redis:memory_used_ratio:exhaustion'
    >>> str(Evidence("api", "error_rate")), str(Evidence("api", "", EvidenceKind.GAP))
    ('api:error_rate', 'api:telemetry_gap')
    """

    entity: str
    metric: str
    kind: EvidenceKind = EvidenceKind.ANOMALY

    def __str__(self) -> str:
        if self.kind is EvidenceKind.GAP:
            return f"{self.entity}:{self.kind}"
        if self.kind is EvidenceKind.ANOMALY:
            return f"{self.entity}:{self.metric}"
        return f"{self.entity}:{self.metric}:{self.kind}"

    def to_list(self) -> list[str]:
        return [self.entity, self.metric, self.kind.value]

    @classmethod
    def from_list(cls, raw: Any) -> Evidence:
        """Evidence from its ``[entity, metric, kind]`` form, checked."""
        entity, metric, kind = as_list(raw, 3)
        return cls(as_str(entity), as_str(metric), EvidenceKind(as_str(kind)))


@dataclass(frozen=True, slots=True)
class Suspect:
    """A probable root cause, with why it is one."""

    node: str
    onset: float
    explains: tuple[str, ...]  # anomalous components it explains (its blast radius)
    evidence: tuple[Evidence, ...]  # its anomalous series, warnings and silences
    score: float = 0.0  # share of the other anomalous components it explains
    reasons: tuple[str, ...] = ()
    change: ChangeEvent | None = None  # a change to it shortly before its symptoms
    region: str | None = None  # the one region its evidence lies in, if one

    @property
    def where(self) -> str:
        """
        >>> Suspect("mongodb", 0.0, (), (), region="eu-west").where
        'mongodb in eu-west'
        """
        return f"{self.node} in {self.region}" if self.region else self.node

    def to_state(self) -> list[Any]:
        return [
            self.node,
            self.onset,
            list(self.explains),
            [e.to_list() for e in self.evidence],
            self.score,
            list(self.reasons),
            None if self.change is None else self.change.to_state(),
            self.region,
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of a candidate, for incidents."""
        return {
            "node": self.node,
            "region": self.region,
            "onset": self.onset,
            "score": self.score,
            "reasons": list(self.reasons),
            "explains": list(self.explains),
            "evidence": [str(e) for e in self.evidence],
            "change": None if self.change is None else self.change.to_wire(),
        }

    @classmethod
    def from_state(cls, state: list[Any]) -> Suspect:
        """
        >>> s = Suspect("db", 1.5, ("api",), (Evidence("db/eu", "ram"),), 0.5, ("1st",), None, "eu")
        >>> Suspect.from_state(s.to_state()) == s
        True
        """
        node, onset, explains, evidence, score, reasons, change, region = as_list(state, 8)
        return cls(
            as_str(node),
            as_float(onset),
            tuple(as_str(n) for n in as_list(explains)),
            tuple(Evidence.from_list(e) for e in as_list(evidence)),
            as_float(score),
            tuple(as_str(r) for r in as_list(reasons)),
            None if change is None else ChangeEvent.from_state(change),
            None if region is None else as_str(region),
        )

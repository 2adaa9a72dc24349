"""Evidence: what a component shows (an anomaly, a forecast, a creep, a
telemetry gap), and the suspects correlation names from it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from models.snapshot import as_float, as_list, as_str


class EvidenceKind(StrEnum):
    """What a component shows: the kinds of evidence detection reports."""

    ANOMALY = "anomaly"  # a series left its baseline the harmful way
    EXHAUSTION = "exhaustion"  # a bounded resource forecast to run out
    CREEP = "creep"  # a slow drift from the long-run baseline
    GAP = "telemetry_gap"  # an entity stopped reporting (no evidence of failure)


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
    node: str
    onset: float
    explains: tuple[str, ...]  # anomalous components downstream of it
    evidence: tuple[Evidence, ...]  # its anomalous series and warnings

    def to_state(self) -> list[Any]:
        return [self.node, self.onset, list(self.explains), [e.to_list() for e in self.evidence]]

    @classmethod
    def from_state(cls, state: list[Any]) -> Suspect:
        """
        >>> s = Suspect("redis", 1.5, ("api",), (Evidence("redis/1", "memory"),))
        >>> Suspect.from_state(s.to_state()) == s
        True
        """
        node, onset, explains, evidence = as_list(state, 4)
        return cls(
            as_str(node),
            as_float(onset),
            tuple(as_str(n) for n in as_list(explains)),
            tuple(Evidence.from_list(e) for e in as_list(evidence)),
        )

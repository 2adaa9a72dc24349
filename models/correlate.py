"""Lay concurrent anomalies onto the dependency graph: the probable root cause
is the anomalous component that explains the most of the others and has no
anomalous dependency of its own; its anomalous dependents are the blast radius.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.topology import Topology

# Components that can fail; journeys and observers only witness failures.
CAUSES = frozenset({"service", "datastore", "edge"})


@dataclass(frozen=True, slots=True)
class Suspect:
    node: str
    onset: float
    explains: tuple[str, ...]  # anomalous components downstream of it
    evidence: tuple[str, ...]  # "entity:metric" of its anomalous series and warnings

    def to_state(self) -> list[Any]:
        return [self.node, self.onset, list(self.explains), list(self.evidence)]

    @classmethod
    def from_state(cls, state: list[Any]) -> Suspect:
        """
        >>> s = Suspect("redis", 1.5, ("api",), ("redis/1:memory",))
        >>> Suspect.from_state(s.to_state()) == s
        True
        """
        node, onset, explains, evidence = state
        return cls(str(node), float(onset), tuple(map(str, explains)), tuple(map(str, evidence)))


def rank_root_causes(
    topology: Topology, onsets: dict[str, float], evidence: dict[str, list[str]]
) -> list[Suspect]:
    """Rank anomalous components as probable root causes, best first.

    ``onsets`` maps each anomalous component to its earliest active anomaly or
    warning. A suspect with an anomalous dependency is only a victim. Among
    the rest, the one explaining the most anomalous components wins, then the
    one that went wrong first.
    """
    suspects = []
    for node, onset in onsets.items():
        if topology.nodes[node].kind not in CAUSES:
            continue
        if any(dep in onsets for dep in topology.upstream[node]):
            continue
        explains = tuple(sorted(n for n in onsets if node in topology.upstream[n]))
        suspects.append(Suspect(node, onset, explains, tuple(sorted(evidence.get(node, ())))))
    suspects.sort(key=lambda s: (-len(s.explains), s.onset, s.node))
    return suspects


def blast_radius(topology: Topology, root: str, affected: set[str]) -> list[str]:
    """Components that went anomalous and depend on ``root``."""
    return sorted(n for n in affected if root in topology.upstream[n])

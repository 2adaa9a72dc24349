"""The service dependency graph: which component depends on which, and which
telemetry entity belongs to which component.

Entity names are written compactly in the topology file and expanded here:
``user-svc/pod-{01..24}`` is 24 pods, ``logins/{region}/{mobile,desktop}``
is one entity per region and client.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from models.schema import SERIES_METRICS

_BRACES = re.compile(r"\{([^{}]*)\}")


def expand(pattern: str, regions: tuple[str, ...] = ()) -> list[str]:
    """Expand ``{01..12}``, ``{a,b}`` and ``{region}`` in an entity pattern.

    >>> expand("redis/node-{01..03}")
    ['redis/node-01', 'redis/node-02', 'redis/node-03']
    >>> expand("logins/{region}/{mobile,desktop}", ("eu", "us"))
    ['logins/eu/mobile', 'logins/eu/desktop', 'logins/us/mobile', 'logins/us/desktop']
    """
    parts = _BRACES.split(pattern)
    choices: list[list[str]] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            choices.append([part])
        elif part == "region":
            choices.append(list(regions))
        elif ".." in part:
            lo, hi = part.split("..")
            choices.append([str(n).zfill(len(lo)) for n in range(int(lo), int(hi) + 1)])
        else:
            choices.append(part.split(","))
    return ["".join(combo) for combo in itertools.product(*choices)]


@dataclass(frozen=True)
class Node:
    """A component: a service, a datastore, an edge, or a user journey."""

    id: str
    kind: str
    family: str
    entities: tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    user_facing: tuple[tuple[str, str], ...] = ()  # (entity, series metric)
    journey: str | None = None
    baseline: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Topology:
    """Components, their dependencies and their telemetry entities."""

    regions: tuple[str, ...]
    nodes: dict[str, Node]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        regions = tuple(data.get("regions", ()))
        nodes: dict[str, Node] = {}
        for node_id, spec in data["nodes"].items():
            family = spec["family"]
            if family not in SERIES_METRICS:
                raise ValueError(f"node {node_id}: unknown family {family!r}")
            entities = tuple(e for p in spec["entities"] for e in expand(p, regions))
            user_facing: list[tuple[str, str]] = []
            for item in spec.get("user_facing", ()):
                pattern, _, metric = item.rpartition(":")
                if metric not in SERIES_METRICS[family]:
                    raise ValueError(f"node {node_id}: {family} has no series {metric!r}")
                for entity in expand(pattern, regions):
                    if entity not in entities:
                        raise ValueError(f"node {node_id}: user-facing {entity!r} is not its own")
                    user_facing.append((entity, metric))
            nodes[node_id] = Node(
                id=node_id,
                kind=spec.get("kind", "service"),
                family=family,
                entities=entities,
                depends_on=tuple(spec.get("depends_on", ())),
                user_facing=tuple(user_facing),
                journey=spec.get("journey"),
                baseline=dict(spec.get("baseline", {})),
            )
        for node in nodes.values():
            for dep in node.depends_on:
                if dep not in nodes:
                    raise ValueError(f"node {node.id} depends on unknown node {dep!r}")
        topology = cls(regions, nodes)
        topology._check_acyclic()
        _ = topology.node_of  # refuses an entity claimed by two components
        return topology

    def _check_acyclic(self) -> None:
        for node_id in self.nodes:
            if node_id in self.upstream_of(node_id):
                raise ValueError(f"dependency cycle through {node_id!r}")

    @cached_property
    def node_of(self) -> dict[str, str]:
        """Entity name -> node id."""
        owner: dict[str, str] = {}
        for node in self.nodes.values():
            for entity in node.entities:
                if entity in owner:
                    raise ValueError(f"entity {entity!r} is in {owner[entity]} and {node.id}")
                owner[entity] = node.id
        return owner

    @cached_property
    def family_of(self) -> dict[str, str]:
        """Entity name -> telemetry family."""
        return {e: self.nodes[n].family for e, n in self.node_of.items()}

    def knows(self, entity: str) -> bool:
        return entity in self.node_of

    def component_of(self, name: str) -> str | None:
        """The component called ``name``, or owning the entity ``name``."""
        return name if name in self.nodes else self.node_of.get(name)

    def names(self, name: str) -> bool:
        """Whether ``name`` is a component or an entity: what a change may be to."""
        return self.component_of(name) is not None

    def upstream_of(self, node_id: str) -> set[str]:
        """Every component ``node_id`` depends on, directly or not."""
        seen: set[str] = set()
        stack = list(self.nodes[node_id].depends_on)
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(self.nodes[dep].depends_on)
        return seen

    @cached_property
    def upstream(self) -> dict[str, frozenset[str]]:
        return {n: frozenset(self.upstream_of(n)) for n in self.nodes}

    @cached_property
    def journey_of(self) -> dict[tuple[str, str], str]:
        """User-facing series (entity, metric) -> the journey it measures."""
        return {
            series: node.journey or node.id
            for node in self.nodes.values()
            for series in node.user_facing
        }

    @cached_property
    def critical(self) -> frozenset[str]:
        """Components that user journeys depend on, without measuring users
        themselves: their failure reaches users a little later."""
        facing = {n.id for n in self.nodes.values() if n.user_facing}
        behind = set().union(*(self.upstream[n] for n in facing))
        return frozenset(behind - facing)

    @cached_property
    def in_region(self) -> dict[str, tuple[str, ...]]:
        """Region -> the entities of it that serve its users (not observers)."""
        found: dict[str, list[str]] = {r: [] for r in self.regions}
        for entity, node in self.node_of.items():
            region = self.region_of(entity)
            if region is not None and self.nodes[node].kind != "observer":
                found[region].append(entity)
        return {r: tuple(entities) for r, entities in found.items()}

    def region_of(self, entity: str) -> str | None:
        for part in entity.split("/"):
            if part in self.regions:
                return part
        return None

"""Replay a scenario through the embedded engine and report what was detected,
and how fast, against the scenario's ground truth (see :mod:`bench.detection`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from bench import detection
from models.changes import ChangeEvent
from models.config import PipelineConfig
from models.detect import Anomaly
from models.gaps import TelemetryGap
from models.impact import Business
from models.incident import Incident, IncidentEvent
from models.pipeline import DetectionPipeline, Event
from models.schema import Telemetry
from models.topology import Topology
from models.trend import CreepWarning, ExhaustionWarning
from producers.replay import paced
from producers.scenario import Scenario
from producers.sources import Simulator
from streams.embedded import EmbeddedEngine, RunStats
from streams.sinks import MemorySink, Sink


@dataclass
class Replay:
    scenario: Scenario
    seed: int
    stats: RunStats
    events: list[Event] = field(default_factory=list)
    config: PipelineConfig = field(default_factory=PipelineConfig)

    @property
    def incidents(self) -> list[Incident]:
        """The last state of every incident, in the order they opened."""
        last: dict[str, Incident] = {}
        for e in self.events:
            if isinstance(e, IncidentEvent):
                last[e.incident.id] = e.incident
        return list(last.values())

    @property
    def warnings(self) -> list[ExhaustionWarning]:
        return [e for e in self.events if isinstance(e, ExhaustionWarning) and e.cleared_at is None]

    @property
    def creeps(self) -> list[CreepWarning]:
        """Slow drifts away from a long-run baseline, as they were first known."""
        return [e for e in self.events if isinstance(e, CreepWarning) and e.ended_at is None]

    def telemetry_gaps(self, topology: Topology) -> list[dict[str, Any]]:
        """Every telemetry gap: which entity (of which component) went silent,
        from when, when it was noticed, and when it spoke again (None: never)."""
        gaps: dict[tuple[str, float], dict[str, Any]] = {}
        for e in self.events:
            if not isinstance(e, TelemetryGap):
                continue
            gap = gaps.setdefault(
                (e.entity, e.start),
                {
                    "entity": e.entity,
                    "component": topology.node_of[e.entity],
                    "start": e.start,
                    "at": e.at,
                    "ended_at": None,
                },
            )
            if e.ended_at is not None:
                gap["ended_at"] = e.ended_at
        return sorted(gaps.values(), key=lambda g: (g["at"], g["entity"]))

    @property
    def anomalies(self) -> list[Anomaly]:
        return [e for e in self.events if isinstance(e, Anomaly) and e.ended_at is None]

    def signals(self, topology: Topology) -> list[dict[str, Any]]:
        """When each component's metric first turned anomalous, in order."""
        first: dict[tuple[str, str], Anomaly] = {}
        for a in self.anomalies:
            first.setdefault((topology.node_of[a.entity], a.metric), a)
        return [
            {
                "at": a.at,
                "onset": a.onset,
                "node": node,
                "metric": metric,
                "entity": a.entity,
                "direction": a.direction,
                "value": a.value,
                "baseline": round(a.baseline, 6),
            }
            for (node, metric), a in first.items()
        ]

    def mttd(self) -> dict[str, float | None]:
        """Time to detect, as :mod:`bench.detection` defines it for every report."""
        return detection.mttd(self.incidents, self.events, self.scenario.truth)

    def latency_budget(self, incident: Incident, topology: Topology) -> dict[str, float] | None:
        """How long each stage held the decision to open ``incident``
        (``bench.detection.latency_budget``)."""
        truth, node_of = self.scenario.truth, topology.node_of
        return detection.latency_budget(incident, self.events, node_of, truth, self.config)

    def to_dict(self, topology: Topology) -> dict[str, Any]:
        truth = self.scenario.truth
        return {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "truth": truth.to_dict(),
            "incidents": [
                i.to_dict() | {"latency_budget": self.latency_budget(i, topology)}
                for i in self.incidents
            ],
            "warnings": [
                {
                    "at": w.at,
                    "entity": w.entity,
                    "kind": "time_to_exhaustion",
                    "eta": w.eta,
                    "metric": w.metric,
                    "value": round(w.value, 4),
                    "slope_per_min": round(w.slope_per_min, 6),
                }
                for w in self.warnings
            ],
            "creeps": [
                {
                    "at": c.at,
                    "onset": c.onset,
                    "entity": c.entity,
                    "metric": c.metric,
                    "value": round(c.value, 6),
                    "baseline": round(c.baseline, 6),
                }
                for c in self.creeps
            ],
            "telemetry_gaps": self.telemetry_gaps(topology),
            "maintenance": [m.to_dict() for m in self.scenario.maintenance],
            "mttd": self.mttd(),
            "signals": self.signals(topology),
            "samples": self.stats.samples,
            "series": self.stats.series,
            "messages": self.stats.messages,
            "rejected": dict(self.stats.rejected),
            "late_points": self.stats.late_points,
            "wall_s": round(self.stats.wall_s, 3),
            "samples_per_s": round(self.stats.samples_per_s),
        }


def replay(
    scenario: Scenario,
    topology: Topology,
    business: Business,
    *,
    seed: int = 1,
    speed: float | None = None,
    sinks: list[Sink] | None = None,
    config: PipelineConfig | None = None,
    tap: Callable[[Telemetry], None] | None = None,
    since: float | None = None,
    until: float | None = None,
) -> Replay:
    """Simulate ``scenario`` and run it through the models, in event-time order;
    only its messages from ``since`` to ``until``, when given (a short world).

    The scenario's announced maintenance is handed to the pipeline, as an
    operator's maintenance calendar would be; its change events reach the
    pipeline among the telemetry. Every telemetry message, as delivered, is
    shown to ``tap`` first (the benchmark plots signals from it).
    """
    config = config or PipelineConfig()
    if scenario.maintenance and not config.maintenance:
        config = replace(config, maintenance=scenario.maintenance)
    memory = MemorySink()
    engine = EmbeddedEngine(DetectionPipeline(topology, business, config), [memory, *(sinks or [])])
    messages: Iterable[Telemetry | ChangeEvent]
    messages = Simulator(scenario, topology, business, seed, since=since, until=until).messages()
    if tap is not None:
        messages = _tapped(messages, tap)
    stats = engine.run(paced(messages, speed))
    return Replay(scenario, seed, stats, memory.events, config)


def _tapped(
    messages: Iterable[Telemetry | ChangeEvent], tap: Callable[[Telemetry], None]
) -> Iterator[Telemetry | ChangeEvent]:
    for message in messages:
        if isinstance(message, Telemetry):
            tap(message)
        yield message

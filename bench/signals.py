"""The few series worth plotting for a scenario, recorded from its messages as
they are delivered (the benchmark's timeline plots draw them)."""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from typing import Any

from models.schema import Telemetry
from models.topology import Topology
from producers.scenario import Scenario

MAX_SIGNALS = 4
# How a simulator parameter shows on the wire: (wire metric, divided by this wire metric).
_WIRE_OF_PARAM: dict[str, tuple[str, str | None]] = {
    "success_ratio": ("successes", "attempts"),
    "timeout_share": ("timeouts", "attempts"),
    "attempt_rate": ("attempts", None),
    "mention_rate": ("mentions", None),
    "outage_share": ("mentions", None),
}


def key_signals(scenario: Scenario, topology: Topology) -> list[tuple[str, str, str | None]]:
    """The series worth plotting for a scenario: (entity, wire metric, divisor).

    The first entity each effect or silence hits, with the metric it changes;
    for a scenario without any, the user-facing login and access signals.
    """
    entities = sorted(topology.node_of)
    wanted: list[tuple[str, str, str | None]] = []
    for effect in scenario.effects:
        hit = next((e for e in entities if fnmatch.fnmatchcase(e, effect.target)), None)
        if hit is None:
            continue
        metric, per = _WIRE_OF_PARAM.get(effect.param, (effect.param, None))
        if (hit, metric, per) not in wanted and all(m != metric for _, m, _ in wanted):
            wanted.append((hit, metric, per))
    for gap in scenario.gaps:
        hit = next((e for e in entities if fnmatch.fnmatchcase(e, gap.target)), None)
        if hit is not None:
            wanted.insert(0, (hit, "error_rate", None))
    if not wanted:
        wanted = [
            ("logins/us-east/mobile", "successes", "attempts"),
            ("lb/us-east", "error_rate", None),
        ]
    return wanted[:MAX_SIGNALS]


class SignalTap:
    """Records 10 s means of a few series from the messages as delivered."""

    def __init__(self, signals: list[tuple[str, str, str | None]], bucket_s: float = 10.0) -> None:
        self.signals = signals
        self.bucket_s = bucket_s
        self._by_entity: dict[str, list[int]] = defaultdict(list)
        for i, (entity, _, _) in enumerate(signals):
            self._by_entity[entity].append(i)
        # signal -> bucket -> [sum, sum of divisor or count]
        self._sums: list[dict[float, list[float]]] = [
            defaultdict(lambda: [0.0, 0.0]) for _ in signals
        ]

    def __call__(self, msg: Telemetry) -> None:
        for i in self._by_entity.get(msg.entity, ()):
            _, metric, per = self.signals[i]
            sums = self._sums[i]
            if metric == "mentions":
                for t in msg.ts:
                    sums[t - t % self.bucket_s][0] += 1 / self.bucket_s
                    sums[t - t % self.bucket_s][1] = 1.0
                continue
            col = msg.metrics.get(metric)
            if col is None:
                continue
            den = msg.metrics.get(per) if per else None
            for j, t in enumerate(msg.ts):
                acc = sums[t - t % self.bucket_s]
                acc[0] += col[j]
                acc[1] += den[j] if den is not None else 1.0

    def series(self) -> list[dict[str, Any]]:
        out = []
        for (entity, metric, per), sums in zip(self.signals, self._sums, strict=True):
            points = sorted((t, s / n) for t, (s, n) in sums.items() if n > 0)
            label = f"{entity} {metric}" + (f"/{per}" if per else "")
            out.append({"label": label, "t": [p[0] for p in points], "v": [p[1] for p in points]})
        return out

"""A seeded synthetic world: every entity of the topology, its daily cycle,
noise and harmless blips, with a scenario's faults laid on top.

Each entity has a few generative parameters (a login's success probability,
a pod's error rate...). Baselines come from the topology file, scenario
effects change them, and the telemetry on the wire is drawn from them: counts
are Poisson and binomial, levels carry multiplicative noise. The same
scenario, topology and seed always give the same messages.
"""

from __future__ import annotations

import fnmatch
import heapq
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from models.changes import ChangeEvent
from models.impact import Business, diurnal
from models.schema import BUILT_IN_SERIES, SERIES_METRICS, Telemetry
from models.topology import Topology
from producers.scenario import DECLARED, Effect, Scenario
from producers.sources.base import Source

BLOCK_S = 600.0  # simulate this much event time per step, vectorised

NORMAL_MENTIONS = (
    "this playlist is carrying my whole week",
    "new album just dropped and it is everything",
    "discover weekly knows me better than my friends",
    "on repeat since this morning",
    "anyone got podcast recommendations?",
    "my wrapped is going to be embarrassing",
    "the road trip playlist is ready",
    "cannot stop listening to this song",
    "shuffle played the perfect song",
    "concert tonight, warming up with the setlist",
)
OUTAGE_MENTIONS = (
    "is spotify down for anyone else?",
    "spotify not working again",
    "can't log in to spotify, session keeps expiring",
    "app won't play anything, just spinning",
    "spotify keeps crashing on my phone",
    "getting an error every time I open the app",
    "music stopped working mid song??",
    "spotify outage? nothing loads",
)

# Parameters that follow the daily traffic cycle.
_TRAFFIC = {"request_rate", "attempt_rate", "mention_rate", "ops_per_s", "connected_clients"}
_DEFAULTS: dict[str, dict[str, float]] = {
    "redis": {
        "memory_used_ratio": 0.62,
        "latency_ms": 0.6,
        "gc_pause_s": 0.03,
        "evictions": 5.0,
        "connected_clients": 2000.0,
        "ops_per_s": 40000.0,
    },
    "pods": {
        "request_rate": 1000.0,
        "error_rate": 0.005,
        "p99_latency_ms": 100.0,
        "restarts": 0.0,
        "ready_ratio": 1.0,
    },
    "logins": {"attempt_rate": 150.0, "success_ratio": 0.95, "timeout_share": 0.1},
    "social": {"mention_rate": 1.0, "outage_share": 0.02},
}


# Series only some entities send, and the noise on each.
_DECLARED_NOISE = {"pool_used_ratio": 0.003, "cpu_used_ratio": 0.02, "disk_used_ratio": 0.001}


def _stable(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


@dataclass
class _Entity:
    name: str
    family: str
    base: dict[str, float]
    effects: list[tuple[Effect, float, float]]  # (effect, value offset, time lag)
    rng: np.random.Generator
    # Noise of the series the topology declares: drawn apart, so that an
    # entity's other series are the same with or without them.
    declared_rng: np.random.Generator

    @property
    def series(self) -> list[str]:
        """The series this entity sends: its family's own, less those it does not declare."""
        absent = set(DECLARED.get(self.family, ())) - set(self.base)
        own = BUILT_IN_SERIES[self.family]
        return [m for m in SERIES_METRICS[self.family] if m in own and m not in absent]


class Simulator(Source):
    """Emits telemetry messages for a scenario, batch by batch in event-time order."""

    def __init__(
        self,
        scenario: Scenario,
        topology: Topology,
        business: Business,
        seed: int = 1,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> None:
        self.scenario = scenario
        self.topology = topology
        self.business = business
        self.seed = seed
        # Only the messages cut from ``since`` to ``until`` are sent: the same
        # messages as the whole scenario's there, so a short world around the
        # fault is the very day, with the models warmed on less of it.
        self.since = scenario.start if since is None else since
        self.until = scenario.end if until is None else until
        scenario.check(topology)  # every target matches an entity that has its parameter
        self.entities = self._build()

    def _build(self) -> list[_Entity]:
        sc = self.scenario
        effects = list(sc.effects) + self._blips()
        built = []
        for node in self.topology.nodes.values():
            pods = [e for e in node.entities if "/pod-" in e]
            for name in node.entities:
                base = dict(_DEFAULTS[node.family])
                base.update(node.baseline)
                if name in pods:  # a pod carries its share of the service's traffic
                    base["request_rate"] /= len(pods)
                    base["restarts"] /= len(pods)
                built.append(
                    _Entity(
                        name,
                        node.family,
                        base,
                        [],
                        np.random.default_rng([self.seed, _stable(name)]),
                        np.random.default_rng([self.seed, _stable(name, "declared")]),
                    )
                )
        # Entities an effect hits lag its leader by a seeded rank: exactly one
        # entity follows the keyframes to the letter.
        for n, effect in enumerate(effects):
            hit = [e for e in built if fnmatch.fnmatchcase(e.name, effect.target)]
            order = np.random.default_rng([self.seed, _stable(effect.target, n)]).permutation(
                len(hit)
            )
            for rank, i in enumerate(order):
                share = rank / (len(hit) - 1) if len(hit) > 1 else 0.0
                hit[i].effects.append((effect, -effect.spread * share, effect.jitter_s * share))
        return built

    def _blips(self) -> list[Effect]:
        """Harmless blips: short latency spikes on single pods and Redis nodes."""
        sc = self.scenario
        rng = np.random.default_rng([self.seed, _stable(sc.name, "blips")])
        candidates = sorted(
            e
            for n in self.topology.nodes.values()
            for e in n.entities
            if "/pod-" in e or n.family == "redis"
        )
        count = rng.poisson(sc.blips_per_hour * (sc.end - sc.start) / 3600)
        blips = []
        for _ in range(count):
            entity = candidates[int(rng.integers(len(candidates)))]
            param = "latency_ms" if entity.startswith("redis/") else "p99_latency_ms"
            t = float(rng.uniform(sc.start, sc.end))
            length = float(rng.uniform(5, 30))
            peak = float(rng.uniform(2, 5))
            frames = ((t, 1.0), (t + 1, peak), (t + length, peak), (t + length + 1, 1.0))
            blips.append(Effect(entity, param, "scale", frames))
        return blips

    @property
    def series_count(self) -> int:
        return sum(len(e.series) for e in self.entities)

    def params(self, entity: _Entity, t: np.ndarray) -> dict[str, np.ndarray]:
        """The entity's generative parameters at times ``t``: baseline, then effects."""
        b = self.business
        day = diurnal(t, b.peak_hour_utc, b.trough_ratio)
        out: dict[str, np.ndarray] = {}
        for name, level in entity.base.items():
            if name in _TRAFFIC:
                out[name] = level * day
            elif name == "memory_used_ratio":
                out[name] = level + 0.1 * (day - 1)  # sessions follow the daily cycle
            elif name in ("p99_latency_ms", "latency_ms", "pool_used_ratio", "cpu_used_ratio"):
                out[name] = level * (0.85 + 0.15 * day)
            else:
                out[name] = np.full_like(t, level)
        for effect, offset, lag in entity.effects:
            times = np.array([k[0] for k in effect.keyframes]) + lag
            if t[-1] < times[0] or t[0] > times[-1]:
                continue
            inside = (t >= times[0]) & (t <= times[-1])
            if effect.every_s is not None and effect.for_s is not None:
                inside &= (t - times[0]) % effect.every_s < effect.for_s  # on, then off
            curve = np.interp(t[inside], times, [k[1] for k in effect.keyframes])
            p = out[effect.param]
            if effect.mode == "set":
                p[inside] = curve + offset
            elif effect.mode == "scale":
                p[inside] *= curve * (1 + offset)
            else:
                p[inside] += curve + offset
        return out

    def _draw(self, entity: _Entity, t: np.ndarray) -> dict[str, np.ndarray]:
        """Telemetry drawn from the parameters, with noise."""
        p = self.params(entity, t)
        rng = entity.rng
        n = len(t)
        if entity.family == "redis":
            return {
                "memory_used_ratio": np.clip(
                    p["memory_used_ratio"] + rng.normal(0, 0.002, n), 0, 1
                ),
                "latency_ms": p["latency_ms"] * rng.lognormal(0, 0.1, n),
                "gc_pause_s": p["gc_pause_s"] * rng.lognormal(0, 0.2, n),
                "evictions": rng.poisson(np.maximum(p["evictions"], 0)).astype(float),
                "connected_clients": np.round(p["connected_clients"] * rng.normal(1, 0.01, n)),
                "ops_per_s": p["ops_per_s"] * rng.normal(1, 0.02, n),
            }
        if entity.family == "pods":
            requests = np.round(np.maximum(p["request_rate"] * rng.normal(1, 0.02, n), 0))
            errors = rng.binomial(requests.astype(np.int64), np.clip(p["error_rate"], 0, 1))
            drawn = {
                "request_rate": requests,
                "error_rate": errors / np.maximum(requests, 1),
                "p99_latency_ms": p["p99_latency_ms"] * rng.lognormal(0, 0.08, n),
                "restarts": rng.poisson(np.maximum(p["restarts"], 0)).astype(float),
                "ready_ratio": np.clip(p["ready_ratio"], 0, 1),
            }
            # What only some entities have: a connection pool, machines of their own.
            for name, sd in _DECLARED_NOISE.items():
                if name in p:
                    noise = entity.declared_rng.normal(0, sd, n)
                    drawn[name] = np.clip(p[name] + noise, 0, 1)
            return drawn
        # logins
        attempts = rng.poisson(np.maximum(p["attempt_rate"], 0))
        successes = rng.binomial(attempts, np.clip(p["success_ratio"], 0, 1))
        timeouts = rng.binomial(attempts - successes, np.clip(p["timeout_share"], 0, 1))
        return {
            "attempts": attempts.astype(float),
            "successes": successes.astype(float),
            "timeouts": timeouts.astype(float),
        }

    def _mentions(
        self, entity: _Entity, t: np.ndarray
    ) -> tuple[np.ndarray, list[float], list[str]]:
        p = self.params(entity, t)
        rng = entity.rng
        counts = rng.poisson(np.maximum(p["mention_rate"], 0))
        when = np.repeat(t, counts)
        outage = rng.random(len(when)) < np.repeat(np.clip(p["outage_share"], 0, 1), counts)
        pick = rng.integers(0, 1 << 30, len(when))
        texts = [
            OUTAGE_MENTIONS[k % len(OUTAGE_MENTIONS)]
            if o
            else NORMAL_MENTIONS[k % len(NORMAL_MENTIONS)]
            for o, k in zip(outage.tolist(), pick.tolist(), strict=True)
        ]
        return when, when.tolist(), texts

    def messages(self) -> Iterator[Telemetry | ChangeEvent]:
        """Every message of the scenario, batch by batch, entities in a fixed order;
        then the scenario's telemetry gaps cut out, its delivery applied, and
        its change events sent among them at their time; of those, the ones
        from ``since`` to ``until``."""
        out: Iterable[Telemetry] = self._generated()
        if self.scenario.gaps:
            out = self._silenced(out)
        if not self.scenario.delivery.in_order:
            out = self._delivered(out)
        every = with_changes(out, self.scenario.changes) if self.scenario.changes else out
        if self.since <= self.scenario.start and self.until >= self.scenario.end:
            yield from every
            return
        for message in every:
            if message.time > self.until:
                if self.scenario.delivery.in_order:
                    return  # nothing later can be due before the end
                continue
            if message.time >= self.since:
                yield message

    def _silenced(self, messages: Iterable[Telemetry]) -> Iterator[Telemetry]:
        """Drop the points of silenced entities inside their silences."""
        spans: dict[str, list[tuple[float, float]]] = {}
        for gap in self.scenario.gaps:
            for name in [e.name for e in self.entities if fnmatch.fnmatchcase(e.name, gap.target)]:
                spans.setdefault(name, []).append((gap.start, gap.end))
        for msg in messages:
            silent = spans.get(msg.entity)
            if silent is None:
                yield msg
                continue
            keep = [i for i, t in enumerate(msg.ts) if not any(a <= t < b for a, b in silent)]
            if len(keep) == len(msg.ts):
                yield msg
            elif keep:
                yield Telemetry(
                    msg.family,
                    msg.entity,
                    msg.time,
                    [msg.ts[i] for i in keep],
                    {k: [v[i] for i in keep] for k, v in msg.metrics.items()},
                    [msg.text[i] for i in keep] if msg.text else [],
                )

    def _delivered(self, messages: Iterable[Telemetry]) -> Iterator[Telemetry]:
        """Hold messages back: every one by up to ``jitter_s``, a share of them
        by up to ``max_delay_s``; each is handed on once the stream has
        reached its due time, so that later batches overtake it."""
        dv = self.scenario.delivery
        rng = np.random.default_rng([self.seed, _stable(self.scenario.name, "delivery")])
        held: list[tuple[float, int, Telemetry]] = []
        for n, msg in enumerate(messages):
            delay = float(rng.uniform(0, dv.jitter_s)) if dv.jitter_s > 0 else 0.0
            if dv.late_share > 0 and rng.random() < dv.late_share:
                delay += float(rng.uniform(0, dv.max_delay_s))
            heapq.heappush(held, (msg.time + delay, n, msg))
            while held and held[0][0] <= msg.time:
                yield heapq.heappop(held)[2]
        while held:
            yield heapq.heappop(held)[2]

    def _generated(self) -> Iterator[Telemetry]:
        sc = self.scenario
        res, batch = sc.resolution_s, sc.batch_s
        per_batch = max(1, round(batch / res))
        block_start = sc.start
        while block_start < sc.end:
            block_end = min(block_start + BLOCK_S, sc.end)
            t = np.arange(block_start, block_end, res)
            drawn = [
                (e, {k: v.tolist() for k, v in self._draw(e, t).items()})
                for e in self.entities
                if e.family != "social"
            ]
            mentions = [(e, *self._mentions(e, t)) for e in self.entities if e.family == "social"]
            ts = t.tolist()
            for i in range(0, len(ts), per_batch):
                j = i + per_batch
                stamp = ts[min(j, len(ts)) - 1] + res  # a batch is cut after its last point
                for entity, columns in drawn:
                    metrics = {k: v[i:j] for k, v in columns.items()}
                    yield Telemetry(entity.family, entity.name, stamp, ts[i:j], metrics)
                for entity, at, when, texts in mentions:
                    lo, hi = np.searchsorted(at, (ts[i], stamp)).tolist()
                    yield Telemetry("social", entity.name, stamp, when[lo:hi], text=texts[lo:hi])
            block_start = block_end


def with_changes(
    messages: Iterable[Telemetry], changes: Iterable[ChangeEvent]
) -> Iterator[Telemetry | ChangeEvent]:
    """``messages`` with each change sent just before the first message of
    its time or later (the rest at the end): changes travel on their own
    topic, untouched by the telemetry's delivery."""
    due = sorted(changes, key=lambda c: c.time)
    n = 0
    for msg in messages:
        while n < len(due) and due[n].time <= msg.time:
            yield due[n]
            n += 1
        yield msg
    yield from due[n:]

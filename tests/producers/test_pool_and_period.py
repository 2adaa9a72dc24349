"""A connection pool where the topology declares one, and periodic effects,
as the simulator sends them; the pool is forecast to exhaustion like memory."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from models.detect_stage import DetectStage
from models.schema import Rejection, validate
from models.topology import Topology
from models.trend import ExhaustionWarning
from producers.scenario import Scenario
from producers.sources import Simulator
from producers.sources.simulator import BLOCK_S

DB = {"request_rate": 12000.0, "error_rate": 0.0005, "p99_latency_ms": 15.0, "restarts": 0.0}
SVC = {"request_rate": 2000.0, "error_rate": 0.005, "p99_latency_ms": 100.0, "restarts": 0.0}


def world(pool: bool = True) -> Topology:
    """A store (with a pool, unless told) and a service of two pods that uses it."""
    store = {**DB, "pool_used_ratio": 0.35} if pool else DB
    return Topology.from_dict(
        {
            "nodes": {
                "postgres": {"family": "pods", "entities": ["postgres"], "baseline": store},
                "music-svc": {
                    "family": "pods",
                    "entities": ["music-svc", "music-svc/pod-{01..02}"],
                    "depends_on": ["postgres"],
                    "baseline": SVC,
                },
            }
        }
    )


def scenario(minutes: int, *effects: dict) -> Scenario:
    return Scenario.from_dict(
        {
            "name": "t",
            "start": "2022-10-06T10:00:00Z",
            "end": f"2022-10-06T{10 + minutes // 60:02d}:{minutes % 60:02d}:00Z",
            "blips_per_hour": 0,
            "effects": list(effects),
        }
    )


def columns(sim: Simulator) -> dict[str, dict[str, list[float]]]:
    """Every entity's series, point by point, and ``ts`` for their times."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for msg in sim.messages():
        out[msg.entity]["ts"] += msg.ts
        for name, values in msg.metrics.items():
            out[msg.entity][name] += values
    return out


def test_only_entities_that_declare_a_pool_send_it(topology, business):
    sim = Simulator(scenario(5), topology, business, seed=1)
    pools = {}
    for msg in sim.messages():
        assert not isinstance(validate(msg.to_wire(), topology.knows), Rejection)
        if "pool_used_ratio" in msg.metrics:
            pools.setdefault(msg.entity, []).extend(msg.metrics["pool_used_ratio"])
        elif msg.family == "pods":
            assert len(msg.metrics) == 5  # a pods message without the column is whole
    declared = {
        e
        for node in topology.nodes.values()
        if "pool_used_ratio" in node.baseline
        for e in node.entities
    }
    assert {"postgres", "mongodb", "mongodb/eu-west"} <= declared
    assert set(pools) == declared
    assert abs(np.mean(pools["postgres"]) - 0.35) < 0.03
    assert abs(np.mean(pools["mongodb"]) - 0.30) < 0.03
    assert sim.series_count == sum(len(e.series) for e in sim.entities)
    assert {e.name for e in sim.entities if "pool_used_ratio" in e.series} == declared


def test_a_declared_pool_leaves_every_other_series_as_it_was(business):
    sc = scenario(12)
    with_pool = columns(Simulator(sc, world(), business, seed=3))
    without = columns(Simulator(sc, world(pool=False), business, seed=3))
    assert "pool_used_ratio" not in without["postgres"]
    assert with_pool["postgres"].pop("pool_used_ratio")
    assert with_pool == without


def test_a_periodic_effect_is_on_for_its_share_of_every_period(business):
    sc = scenario(
        30,
        {
            "target": "postgres",
            "param": "p99_latency_ms",
            "keyframes": [["10:05", 1000], ["10:25", 1000]],
            "every_s": 120,
            "for_s": 8,
        },
    )
    assert sc.end - sc.start > BLOCK_S  # the period runs across the simulator's blocks
    seen = columns(Simulator(sc, world(), business, seed=1))["postgres"]
    t = np.array(seen["ts"]) - sc.effects[0].keyframes[0][0]
    high = np.array(seen["p99_latency_ms"]) > 300
    inside = (t >= 0) & (t <= 1200)
    assert np.array_equal(high, inside & (t % 120 < 8))
    assert high.sum() == 11 * 8 - 7  # ten whole periods, then 10:25:00 alone


def test_a_pool_driven_towards_its_limit_is_forecast_to_run_out(business):
    topology = world()
    leak = {
        "target": "postgres",
        "param": "pool_used_ratio",
        "keyframes": [["10:05", 0.35], ["10:40", 0.9]],
    }
    stage = DetectStage(topology)
    found = []
    for msg in Simulator(scenario(40, leak), topology, business, seed=1).messages():
        out = stage.process(msg)
        assert not isinstance(out, Rejection)
        found += out
    warned = [w for w in found if isinstance(w, ExhaustionWarning)]
    assert [(w.entity, w.metric) for w in warned] == [("postgres", "pool_used_ratio")]
    [w] = warned
    assert w.slope_per_min > 0.01 and w.at < w.eta


def test_the_default_topology_declares_a_pool_for_its_two_databases(topology):
    declared = {n.id for n in topology.nodes.values() if "pool_used_ratio" in n.baseline}
    assert declared == {"postgres", "mongodb"}

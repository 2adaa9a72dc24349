"""The scenario library's own features: truth kinds, maintenance, telemetry
gaps and late delivery in the simulator."""

from __future__ import annotations

import itertools

import pytest

from producers.scenario import Scenario
from producers.sources import Simulator

BASE = {
    "name": "t",
    "start": "2022-10-06T10:00:00Z",
    "end": "2022-10-06T10:05:00Z",
    "blips_per_hour": 0,
}


def test_every_shipped_scenario_says_what_is_expected(scenarios):
    kinds = {s.truth.kind for s in scenarios.values()}
    assert kinds == {"fault", "decoy", "gap"}
    assert len(scenarios) >= 14
    for s in scenarios.values():
        if "page" in s.truth.expects:
            assert s.truth.sev and s.truth.root_cause and s.truth.fault_start, s.name
            assert s.truth.impact_start is not None, s.name
        if s.truth.expects == ("warning",):
            assert s.truth.root_cause and s.truth.sev is None, s.name
        if s.truth.kind == "gap":
            assert s.gaps and s.truth.affected, s.name
    assert scenarios["planned-maintenance"].maintenance[0].components == (
        "mongodb",
        "playlist-svc",
    )
    assert scenarios["baseline-24h"].truth.kind == "decoy"


def test_truth_kind_and_expectation_are_checked():
    with pytest.raises(ValueError, match="kind"):
        Scenario.from_dict({**BASE, "truth": {"kind": "surprise"}})
    with pytest.raises(ValueError, match="expect"):
        Scenario.from_dict({**BASE, "truth": {"kind": "fault", "expect": "maybe"}})


def test_a_gap_silences_its_entities_and_nothing_else(topology, business):
    sc = Scenario.from_dict(
        {**BASE, "gaps": [{"target": "music-svc*", "start": "10:02", "end": "10:03"}]}
    )
    silent_from, silent_to = sc.gaps[0].start, sc.gaps[0].end
    seen = {"music": [], "other": 0}
    for msg in Simulator(sc, topology, business, seed=1).messages():
        if msg.entity.startswith("music-svc"):
            seen["music"].extend(msg.ts)
        else:
            seen["other"] += len(msg.ts)
    assert seen["music"] and not any(silent_from <= t < silent_to for t in seen["music"])
    assert max(seen["music"]) >= silent_to  # it speaks again
    assert seen["other"] > 0


def test_late_delivery_reorders_but_loses_nothing(topology, business):
    plain = Scenario.from_dict(BASE)
    late = Scenario.from_dict(
        {**BASE, "delivery": {"late_share": 0.2, "max_delay_s": 30, "jitter_s": 2}}
    )
    sent = list(Simulator(plain, topology, business, seed=1).messages())
    delivered = list(Simulator(late, topology, business, seed=1).messages())
    assert sorted(m.time for m in delivered) == sorted(m.time for m in sent)
    behind = [b.time - a.time for a, b in itertools.pairwise(delivered) if b.time < a.time]
    assert behind and min(behind) < -10  # some arrive well after later batches

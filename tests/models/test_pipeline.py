"""The whole decision path on a small hand-made world, window by window."""

from __future__ import annotations

import pickle
import random

import orjson
import pytest

from models.impact import Business
from models.incident import IncidentEvent
from models.pipeline import (
    SNAPSHOT_FORMAT,
    CorrelateStage,
    DetectionPipeline,
    DetectStage,
    IncompatibleSnapshot,
    LatePoints,
    Note,
    PipelineConfig,
    WindowReport,
    degradation,
)
from models.schema import INTERNAL_REASONS, SERIES_METRICS, Rejection, Telemetry
from models.topology import Topology

T0 = 1_664_877_600.0  # 2022-10-04 10:00 UTC
REGIONS = ["north", "south", "east", "west"]

WORLD = {
    "regions": REGIONS,
    "nodes": {
        "db": {"kind": "datastore", "family": "pods", "entities": ["db"]},
        "api": {
            "family": "pods",
            "entities": ["api"],
            "depends_on": ["db"],
            "journey": "access",
            "user_facing": ["api:error_rate"],
        },
        "logins": {
            "kind": "journey",
            "family": "logins",
            "entities": ["logins/{region}"],
            "depends_on": ["api"],
            "journey": "login",
            "user_facing": ["logins/{region}:success_ratio"],
        },
    },
}


@pytest.fixture
def pipeline(business_data):
    config = PipelineConfig(resolve_after_s=120.0, reopen_within_s=0.0)
    return DetectionPipeline(Topology.from_dict(WORLD), Business.from_dict(business_data), config)


NOISE = random.Random(1)


def batch(t, db_latency=10.0, api_errors=0.01, success=0.95, rng=NOISE):
    """Five seconds of telemetry from every entity, cut at t + 5."""
    ts = [t + i for i in range(5)]
    yield Telemetry(
        "pods",
        "db",
        t + 5,
        ts,
        {"p99_latency_ms": [db_latency * rng.uniform(0.95, 1.05) for _ in ts]},
    )
    yield Telemetry(
        "pods", "api", t + 5, ts, {"error_rate": [api_errors + rng.uniform(0, 0.002) for _ in ts]}
    )
    for region in REGIONS:
        attempts = [1000.0] * 5
        ok = [round(a * success) - rng.randint(0, 5) for a in attempts]
        yield Telemetry(
            "logins",
            f"logins/{region}",
            t + 5,
            ts,
            {"attempts": attempts, "successes": ok, "timeouts": [0.0] * 5},
        )


def run(pipeline, start, end, **faults):
    events = []
    for t in range(int(start), int(end), 5):
        for msg in batch(float(t), **faults):
            out = pipeline.process(msg)
            assert not isinstance(out, Rejection), out
            events.extend(out)
    return events


def incident_events(events):
    return [e for e in events if isinstance(e, IncidentEvent)]


def test_quiet_world_pages_nobody(pipeline):
    events = run(pipeline, T0, T0 + 3600)
    assert incident_events(events) == []
    assert pipeline.series == 2 + len(REGIONS) * 3


def test_a_database_fault_pages_once_with_root_cause_sev_and_resolution(pipeline):
    run(pipeline, T0, T0 + 900)  # learn the baseline
    fault = T0 + 900
    events = run(pipeline, fault, fault + 60, db_latency=500.0)
    assert incident_events(events) == []  # internal only: nobody is hurt yet
    hurt = fault + 60
    events = run(pipeline, hurt, hurt + 600, db_latency=500.0, api_errors=0.6, success=0.1)
    opened = [e for e in incident_events(events) if e.kind == "opened"]
    assert len(opened) == 1
    incident = opened[0].incident
    assert incident["root_cause"] == "db"
    assert opened[0].at - hurt <= 20
    worst = incident_events(events)[-1].incident
    assert worst["sev"] == 1
    assert set(worst["blast_radius"]) == {"api", "logins"}
    assert worst["impact"]["peak_share"] > 0.8
    events = run(pipeline, hurt + 600, hurt + 1200)
    kinds = [e.kind for e in incident_events(events)]
    assert kinds[-1] == "resolved" and kinds.count("resolved") == 1
    assert "opened" not in kinds


def test_one_region_down_is_sev2_not_sev1(business_data):
    world = Topology.from_dict(WORLD)
    pipeline = DetectionPipeline(world, Business.from_dict(business_data))
    run(pipeline, T0, T0 + 900)
    events = []
    for t in range(int(T0 + 900), int(T0 + 1200), 5):
        for msg in batch(float(t)):
            if msg.entity == "logins/south":
                msg = Telemetry(
                    msg.family,
                    msg.entity,
                    msg.time,
                    msg.ts,
                    {**msg.metrics, "successes": [50.0] * 5},
                )
            events.extend(pipeline.process(msg))
    incidents = {e.incident["id"]: e.incident for e in incident_events(events)}
    assert len(incidents) == 1
    [incident] = incidents.values()
    assert incident["sev"] == 2
    assert any("1 of 4 regions" in r for r in incident["sev_reasons"])


def test_a_message_far_ahead_or_wholly_late_is_refused(pipeline):
    run(pipeline, T0, T0 + 300)
    ahead = Telemetry("pods", "db", T0 + 90_000, [T0 + 89_999], {"p99_latency_ms": [10.0]})
    refused = pipeline.process(ahead)
    assert isinstance(refused, Rejection) and refused.reason == "too_far_ahead"
    late = Telemetry("pods", "db", T0 + 300, [T0 + 10, T0 + 11], {"p99_latency_ms": [1.0, 1.0]})
    refused = pipeline.process(late)
    assert isinstance(refused, Rejection) and refused.reason == "late"
    # The stream goes on undisturbed.
    assert incident_events(run(pipeline, T0 + 300, T0 + 600)) == []


def test_partly_late_message_keeps_its_fresh_points_and_counts_the_rest(pipeline):
    run(pipeline, T0, T0 + 300)
    mixed = Telemetry(
        "pods", "db", T0 + 300, [T0 + 100, T0 + 299], {"p99_latency_ms": [10.0, 10.0]}
    )
    events = pipeline.process(mixed)
    assert [e for e in events if isinstance(e, LatePoints)] == [LatePoints("db", 1, T0 + 300)]
    assert pipeline.late_points == 1


@pytest.mark.parametrize(
    ("family", "metric", "value", "baseline", "expected"),
    [
        ("logins", "success_ratio", 0.05, 0.95, 0.9 / 0.95),
        ("logins", "success_ratio", 0.99, 0.95, 0.0),
        ("pods", "error_rate", 0.505, 0.01, 0.5),
        ("pods", "error_rate", 0.0, 0.01, 0.0),
    ],
)
def test_degradation_is_the_share_of_users_failing(family, metric, value, baseline, expected):
    spec = SERIES_METRICS[family][metric]
    assert degradation(spec, value, baseline) == pytest.approx(expected)


def test_a_pipeline_restored_from_a_snapshot_decides_exactly_as_one_never_stopped(business_data):
    """Learned baselines, open anomalies and the open incident all survive a
    snapshot: what a worker restoring its state relies on."""

    def fresh():
        return DetectionPipeline(Topology.from_dict(WORLD), Business.from_dict(business_data))

    def story(pipeline, start, end):
        faults = {"db_latency": 500.0, "api_errors": 0.6, "success": 0.1}
        quiet = run(pipeline, start, min(end, T0 + 900))
        return quiet + run(pipeline, max(start, T0 + 900), end, **faults)

    NOISE.seed(7)
    straight = story(fresh(), T0, T0 + 1500)
    NOISE.seed(7)
    first = fresh()
    before = story(first, T0, T0 + 1000)
    restored = pickle.loads(pickle.dumps(first))
    after = story(restored, T0 + 1000, T0 + 1500)
    assert before + after == straight
    assert any(isinstance(e, IncidentEvent) and e.kind == "opened" for e in before)


def test_a_snapshot_restores_only_into_the_format_that_wrote_it(business_data):
    """An upgraded worker must not misread, or crash on, state it cannot read."""
    topology = Topology.from_dict(WORLD)
    stage = DetectStage(topology, PipelineConfig(), source="pods:0")
    run(stage, T0, T0 + 300)
    restored = DetectStage.restore(stage.snapshot(), topology, PipelineConfig())
    assert restored.monitors.keys() == stage.monitors.keys() and restored.monitors
    correlator = CorrelateStage(topology, Business.from_dict(business_data), PipelineConfig())
    refusals = {
        pickle.dumps(stage): "before snapshot formats were numbered",
        stage.snapshot().replace(
            f":{SNAPSHOT_FORMAT}:".encode(), f":{SNAPSHOT_FORMAT + 1}:".encode(), 1
        ): f"format {SNAPSHOT_FORMAT + 1}",
        stage.snapshot()[:60]: "unreadable",
        correlator.snapshot(): "holds a CorrelateStage",
    }
    for blob, why in refusals.items():
        with pytest.raises(IncompatibleSnapshot, match=why):
            DetectStage.restore(blob, topology, PipelineConfig())


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[]", b'{"source": "p0"}', b'{"source": "p0", "start": "x"}'],
)
def test_a_record_that_is_not_a_window_report_is_refused_with_a_reason(raw):
    refused = WindowReport.parse(raw)
    assert isinstance(refused, Rejection)
    assert refused.reason in INTERNAL_REASONS and refused.detail


def test_a_window_report_survives_the_wire():
    report = WindowReport("pods:3", 10.0, 25.0, (Note("a", "a:x", 0.0, True),), {("a", "x"): 0.5})
    assert WindowReport.parse(orjson.dumps(report.to_dict())) == report

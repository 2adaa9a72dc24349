"""The whole decision path on a small hand-made world, window by window."""

from __future__ import annotations

import random

import orjson
import pytest

from models.config import PipelineConfig
from models.correlate import CorrelateStage
from models.detect import Anomaly, SeriesMonitor
from models.detect_bank import BankedMonitor
from models.detect_stage import DetectStage, degradation
from models.evidence import Evidence, EvidenceKind
from models.impact import Business
from models.incident import IncidentEvent
from models.pipeline import DetectionPipeline
from models.report import LatePoints, Note, WindowReport
from models.schema import INTERNAL_REASONS, SERIES_METRICS, Rejection, Telemetry
from models.snapshot import SNAPSHOT_FORMAT, IncompatibleSnapshot
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
    assert incident.root_cause == "db"
    assert opened[0].at - hurt <= 20
    worst = incident_events(events)[-1].incident
    assert worst.sev == 1
    assert set(worst.blast_radius) == {"api", "logins"}
    assert worst.impact.peak_share > 0.8
    events = run(pipeline, hurt + 600, hurt + 1200)
    kinds = [e.kind for e in incident_events(events)]
    assert kinds[-1] == "resolved" and kinds.count("resolved") == 1
    assert "opened" not in kinds


@pytest.mark.parametrize("look_early", [True, False])
def test_users_hurt_worse_raise_the_sev_from_the_first_half_of_a_window(business_data, look_early):
    floor = PipelineConfig().early_loss_floor if look_early else 1.01  # 1.01: never
    config = PipelineConfig(early_loss_floor=floor)
    p = DetectionPipeline(Topology.from_dict(WORLD), Business.from_dict(business_data), config)
    run(p, T0, T0 + 900)
    hurt = T0 + 900
    opened = incident_events(run(p, hurt, hurt + 60, api_errors=0.2, success=0.9))
    assert [(e.kind, e.incident.sev) for e in opened] == [("opened", 2)]
    worse = hurt + 60  # a window's start
    events = incident_events(run(p, worse, worse + 60, api_errors=0.6, success=0.1))
    sev1 = next(e.at for e in events if e.incident.sev == 1)
    # The first half of the window, delivered at worse + 5, tells; its end
    # and allowed lateness come at worse + 15.
    assert sev1 - worse == (5 if look_early else 15)
    assert [e.kind for e in events].count("opened") == 0


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
    incidents = {e.incident.id: e.incident for e in incident_events(events)}
    assert len(incidents) == 1
    [incident] = incidents.values()
    assert incident.sev == 2
    assert any("1 of 4 regions" in r for r in incident.sev_reasons)


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


def restored(pipeline: DetectionPipeline) -> DetectionPipeline:
    """The pipeline rebuilt from its stages' snapshots, as a worker restores them."""
    topology, config = pipeline.topology, pipeline.config
    twin = DetectionPipeline(topology, pipeline.correlate.tracker.meter.business, config)
    twin.detect = DetectStage.restore(pipeline.detect.snapshot(), topology, config)
    twin.correlate = CorrelateStage.restore(pipeline.correlate.snapshot(), topology, config)
    return twin


def story(pipeline, start, end):
    """Quiet until T0 + 900, then the database fails and users with it."""
    faults = {"db_latency": 500.0, "api_errors": 0.6, "success": 0.1}
    quiet = run(pipeline, start, min(end, T0 + 900))
    return quiet + run(pipeline, max(start, T0 + 900), end, **faults)


def test_a_pipeline_restored_from_a_snapshot_decides_exactly_as_one_never_stopped(business_data):
    """Learned baselines, open anomalies and the open incident all survive a
    snapshot: what a worker restoring its state relies on."""

    def fresh():
        return DetectionPipeline(Topology.from_dict(WORLD), Business.from_dict(business_data))

    NOISE.seed(7)
    straight = story(fresh(), T0, T0 + 1500)
    NOISE.seed(7)
    first = fresh()
    before = story(first, T0, T0 + 1000)
    assert first.correlate.tracker.current is not None  # an incident open in the snapshot
    again = restored(first)
    assert again.detect.snapshot() == first.detect.snapshot()
    assert again.correlate.snapshot() == first.correlate.snapshot()
    after = story(again, T0 + 1000, T0 + 1500)
    assert before + after == straight
    assert any(isinstance(e, IncidentEvent) and e.kind == "opened" for e in before)


def test_series_stepped_together_or_one_by_one_decide_and_snapshot_alike(business_data):
    """The bank of surprise detectors and one monitor per series: the same
    events, the same snapshot byte for byte, and a snapshot of either
    restores into the other and goes on alike."""
    topology = Topology.from_dict(WORLD)
    stages = {}
    for vectorised in (True, False):
        NOISE.seed(7)
        config = PipelineConfig(vectorised=vectorised)
        stage = stages[vectorised] = DetectStage(topology, config)
        events = story(stage, T0, T0 + 1100)
        assert any(isinstance(e, Anomaly) and e.ended_at is None for e in events)
        stages[vectorised, "events"] = events
    banked, single = stages[True], stages[False]
    assert stages[True, "events"] == stages[False, "events"]
    assert banked.snapshot() == single.snapshot()
    key = ("db", "p99_latency_ms")
    assert isinstance(banked.monitors[key], BankedMonitor)
    assert isinstance(single.monitors[key], SeriesMonitor)
    assert banked.monitors[key].active == single.monitors[key].active is not None
    crossed = {
        "into the bank": DetectStage.restore(single.snapshot(), topology, banked.config),
        "out of the bank": DetectStage.restore(banked.snapshot(), topology, single.config),
    }
    NOISE.seed(8)
    after = story(single, T0 + 1100, T0 + 1500)
    for way, stage in crossed.items():
        assert stage.snapshot() == banked.snapshot(), way
        NOISE.seed(8)
        assert story(stage, T0 + 1100, T0 + 1500) == after, way
        assert stage.snapshot() == single.snapshot(), way


def test_a_fresh_stage_snapshots_its_infinities_and_restores_them():
    """Nothing decided yet: the watermark and the correlated windows are -inf,
    which JSON cannot hold as numbers."""
    topology = Topology.from_dict(WORLD)
    stage = DetectStage(topology, PipelineConfig(), source="pods:0")
    again = DetectStage.restore(stage.snapshot(), topology, PipelineConfig())
    assert again.windows.watermark == again.windows.closed_until == float("-inf")
    assert again.source == "pods:0"


def test_a_correlator_snapshot_leaves_waiting_reports_out(business_data):
    """An engine redelivers the reports not yet correlated, so the snapshot
    holds neither them nor progress past the windows correlated."""
    topology = Topology.from_dict(WORLD)
    stage = CorrelateStage(topology, Business.from_dict(business_data), PipelineConfig())
    stage.expect(["p0", "p1"])
    stage.add(WindowReport("p0", T0, T0 + 15, (), {}))
    stage.add(WindowReport("p1", T0, T0 + 15, (), {}))
    stage.add(WindowReport("p0", T0 + 10, T0 + 25, (), {}))
    assert stage.pending and stage.correlated_until == T0
    again = CorrelateStage.restore(stage.snapshot(), topology, PipelineConfig())
    assert again.pending == {} and again.progress == {"p0": T0, "p1": T0}
    assert again.correlated_until == T0
    fresh = CorrelateStage(topology, Business.from_dict(business_data), PipelineConfig())
    fresh.expect(["p0"])
    assert CorrelateStage.restore(fresh.snapshot(), topology, PipelineConfig()).progress == {
        "p0": float("-inf")
    }


def test_a_snapshot_restores_only_into_the_format_and_stage_that_wrote_it(business_data):
    """An upgraded worker must not misread, or crash on, state it cannot read."""
    topology = Topology.from_dict(WORLD)
    stage = DetectStage(topology, PipelineConfig(), source="pods:0")
    run(stage, T0, T0 + 300)
    again = DetectStage.restore(stage.snapshot(), topology, PipelineConfig())
    assert again.monitors.keys() == stage.monitors.keys() and again.monitors
    correlator = CorrelateStage(topology, Business.from_dict(business_data), PipelineConfig())
    doc = orjson.loads(stage.snapshot())
    refusals = {
        b"foreshock-snapshot:2:\x80\x05...": "snapshot format 2 \\(objects, never read\\)",
        orjson.dumps({**doc, "format": SNAPSHOT_FORMAT + 1}): f"format {SNAPSHOT_FORMAT + 1}",
        orjson.dumps({**doc, "format": "3"}): "no format number",
        stage.snapshot()[:60]: "not JSON",
        b"[1, 2]": "not a snapshot",
        correlator.snapshot(): "holds a 'CorrelateStage' stage",
    }
    for blob, why in refusals.items():
        with pytest.raises(IncompatibleSnapshot, match=why):
            DetectStage.restore(blob, topology, PipelineConfig())
    with pytest.raises(IncompatibleSnapshot, match="holds a 'DetectStage' stage"):
        CorrelateStage.restore(stage.snapshot(), topology, PipelineConfig())


def _with(doc, path, value):
    """``doc`` with the field at ``path`` replaced (or removed, for ``...``)."""
    doc = orjson.loads(orjson.dumps(doc))
    inner = doc
    for step in path[:-1]:
        inner = inner[step]
    if value is ...:
        del inner[path[-1]]
    else:
        inner[path[-1]] = value
    return orjson.dumps(doc)


def test_a_snapshot_with_a_field_missing_or_of_the_wrong_type_is_refused(business_data):
    topology = Topology.from_dict(WORLD)
    pipeline = DetectionPipeline(topology, Business.from_dict(business_data))
    NOISE.seed(3)
    run(pipeline, T0, T0 + 400)
    detect = orjson.loads(pipeline.detect.snapshot())
    series = detect["state"]["monitors"][0]
    assert series[:2] == ["db", "p99_latency_ms"]
    broken = {
        ("state", "samples"): ("12", "expected an integer"),
        ("state", "windows", "watermark"): (None, "expected a number"),
        ("state", "monitors", 0, 2, "learned", "_level"): ([1.0], "expected a number"),
        ("state", "monitors", 0, 2, "learned", "_events"): ([True], "expected 36 items"),
        ("state", "monitors", 0, 2, "active"): ("yes", "expected an object"),
        ("state", "monitors", 0): (["db", 7, {}], "expected a string"),
        ("state", "gaps", "last_seen"): ([], "expected an object"),
        ("state", "batches"): ({}, "expected a list"),
        ("state", "source"): (..., "missing field 'source'"),
        ("state",): ([], "its state is not an object"),
    }
    for path, (value, why) in broken.items():
        with pytest.raises(IncompatibleSnapshot, match=why):
            DetectStage.restore(_with(detect, path, value), topology, pipeline.config)
    correlate = orjson.loads(pipeline.correlate.snapshot())
    for path, why in {
        ("state", "correlated_until"): "expected a number",
        ("state", "active"): "expected an object",
        ("state", "business", "users_total"): "expected a number",
    }.items():
        with pytest.raises(IncompatibleSnapshot, match=why):
            CorrelateStage.restore(_with(correlate, path, "x"), topology, pipeline.config)
    with pytest.raises(IncompatibleSnapshot, match="not in the topology"):
        bad = _with(correlate, ("state", "active"), {"nowhere": []})
        CorrelateStage.restore(bad, topology, pipeline.config)


def test_a_snapshot_crafted_to_run_code_under_pickle_is_refused_and_never_run(tmp_path):
    """The changelog holds bytes anyone able to write to the topic may have
    written. These would run a shell command if unpickled; they are refused
    with a reason, and the command never runs."""
    marker = tmp_path / "ran"
    # Pickle opcodes, by hand: GLOBAL os.system, MARK, STRING command, TUPLE, REDUCE, STOP.
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    topology = Topology.from_dict(WORLD)
    for blob in (b"foreshock-snapshot:3:" + payload, b"foreshock-snapshot:2:" + payload, payload):
        for restore in (DetectStage.restore, CorrelateStage.restore):
            with pytest.raises(IncompatibleSnapshot) as refused:
                restore(blob, topology, PipelineConfig())
            assert str(refused.value)
    assert not marker.exists()
    # The worker goes on: a fresh stage restores from its own snapshot.
    stage = DetectStage(topology, PipelineConfig())
    assert DetectStage.restore(stage.snapshot(), topology, PipelineConfig()).monitors == {}


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[]", b'{"source": "p0"}', b'{"source": "p0", "start": "x"}'],
)
def test_a_record_that_is_not_a_window_report_is_refused_with_a_reason(raw):
    refused = WindowReport.parse(raw)
    assert isinstance(refused, Rejection)
    assert refused.reason in INTERNAL_REASONS and refused.detail


def test_a_window_report_survives_the_wire():
    notes = tuple(
        Note(Evidence("a", "" if kind is EvidenceKind.GAP else "x", kind), 0.0, True)
        for kind in EvidenceKind
    )
    report = WindowReport("pods:3", 10.0, 25.0, notes, {("a", "x"): 0.5})
    assert WindowReport.parse(orjson.dumps(report.to_dict())) == report


@pytest.mark.parametrize(
    "note",
    [
        ["a", "x", "anomaly", 0.0, "yes"],
        ["a", "x", "outage", 0.0, True],
        ["a", 3, "anomaly", 0.0, True],
        ["a", "x", "anomaly", "0", True],
        ["a", "x", 0.0, True],
        "a:x",
    ],
)
def test_a_window_report_with_a_malformed_note_is_refused(note):
    raw = {"source": "p0", "start": 10.0, "decided_at": 15.0, "notes": [note], "losses": []}
    refused = WindowReport.parse(orjson.dumps(raw))
    assert isinstance(refused, Rejection) and refused.reason == "not_a_window_report"


@pytest.mark.parametrize("river", ["river-sad", "river-holt-winters"])
def test_a_river_detector_chosen_for_a_family_runs_the_same_path(business_data, river):
    """Pods watched by a River detector, logins by Foreshock's: the fault is
    found, with its root cause, and a snapshot restores River's models too."""
    config = PipelineConfig(detectors=(("pods", river),), resolve_after_s=120.0)
    pipeline = DetectionPipeline(
        Topology.from_dict(WORLD), Business.from_dict(business_data), config
    )
    run(pipeline, T0, T0 + 900)
    kinds = {key: type(mon.detector).__name__ for key, mon in pipeline.detect.monitors.items()}
    assert kinds[("db", "p99_latency_ms")] == kinds[("api", "error_rate")] != "SurpriseDetector"
    assert kinds[("logins/north", "success_ratio")] == "SurpriseDetector"
    again = restored(pipeline)
    assert again.detect.snapshot() == pipeline.detect.snapshot()
    fault = T0 + 900
    events = run(again, fault, fault + 300, db_latency=500.0, api_errors=0.6, success=0.1)
    opened = [e for e in incident_events(events) if e.kind == "opened"]
    assert len(opened) == 1 and opened[0].incident.root_cause == "db"


def test_an_unknown_detector_name_is_refused_with_the_names_there_are():
    with pytest.raises(ValueError, match=r"no detector river-typo; registered: .*surprise"):
        PipelineConfig(detectors=(("redis", "river-typo"),))


def test_once_every_source_has_gone_quiet_the_windows_still_waiting_are_correlated(
    business_data,
):
    """The last source to go quiet had decided fewer windows than another:
    the windows only the other reported are correlated when it is retired,
    not left waiting (their reports never acknowledged) for ever."""
    topology = Topology.from_dict(WORLD)
    stage = CorrelateStage(topology, Business.from_dict(business_data), PipelineConfig())
    stage.expect(["p0", "p1"])
    for start in (T0, T0 + 10):
        stage.add(WindowReport("p0", start, start + 15, (), {}))
    stage.add(WindowReport("p1", T0, T0 + 15, (), {}))
    assert stage.holds_back("p1", reporting=["p0"])  # p0 has decided a later window
    assert not stage.holds_back("p0", reporting=["p1"])
    assert not stage.holds_back("p1", reporting=[])
    stage.retire("p0")
    assert stage.correlated_until == T0 and T0 + 10 in stage.pending
    stage.retire("p1")
    assert stage.correlated_until == T0 + 10 and not stage.pending

from __future__ import annotations

import orjson

from models.changes import ChangeEvent, ChangeKind
from models.incident import Change, IncidentEvent
from models.pipeline import DetectionPipeline
from models.schema import Telemetry, encode
from streams.embedded import EmbeddedEngine
from streams.sinks import JsonlSink


def test_bad_bytes_go_to_the_dead_letter_with_their_reason(topology, business):
    dead = []
    engine = EmbeddedEngine(
        DetectionPipeline(topology, business), deadletter=lambda m, r: dead.append((m, r))
    )
    good = Telemetry("pods", "user-svc", 1e9 + 5, [1e9], {"error_rate": [0.01]})
    stats = engine.run(
        [
            b"{not json",
            orjson.dumps({"v": 2}),
            encode(Telemetry("pods", "nobody", 1e9 + 5, [1e9], {"error_rate": [0.01]})),
            encode(good),
            good,  # the same batch again, as a retry without idempotence would send it
            Telemetry("pods", "user-svc", 1e9 + 90_000, [1e9 + 89_999], {"error_rate": [0.01]}),
        ]
    )
    reasons = ["not_json", "missing_field", "unknown_entity", "duplicate", "too_far_ahead"]
    assert [r.reason for _, r in dead] == reasons
    assert dead[0][0] == b"{not json"  # verbatim
    assert stats.rejected == dict.fromkeys(reasons, 1)
    assert stats.messages == 6
    assert stats.samples == 1


def test_change_events_reach_correlation_and_bad_ones_the_dead_letter(topology, business):
    dead = []
    pipeline = DetectionPipeline(topology, business)
    engine = EmbeddedEngine(pipeline, deadletter=lambda m, r: dead.append((m, r)))
    entity = next(iter(topology.node_of))
    deploy = ChangeEvent(1e9, "lb", ChangeKind.DEPLOY, "edge v42", "ci")
    on_entity = ChangeEvent(1e9 + 1, entity, ChangeKind.SCALING)
    unknown_kind = ChangeEvent(1e9, "lb", "reboot")  # type: ignore[arg-type]
    nowhere = ChangeEvent(1e9, "ghost-svc", ChangeKind.FLAG)
    good = Telemetry("pods", "user-svc", 1e9 + 5, [1e9], {"error_rate": [0.01]})
    # Raw bytes are telemetry, whatever they hold.
    as_bytes = orjson.dumps(deploy.to_wire())
    stats = engine.run([deploy, unknown_kind, good, on_entity, nowhere, as_bytes])
    assert pipeline.correlate.changes == {deploy, on_entity}
    assert [(m, r.reason) for m, r in dead] == [
        (unknown_kind, "unknown_change_kind"),
        (nowhere, "unknown_entity"),
        (as_bytes, "missing_field"),  # no family, no entity
    ]
    assert stats.changes == 2 and stats.messages == 6 and stats.samples == 1
    assert stats.rejected == {"unknown_change_kind": 1, "unknown_entity": 1, "missing_field": 1}


def test_incident_events_reach_a_jsonl_file(tmp_path, replayed):
    # A short world in which one incident opens and resolves.
    events = replayed("redis-failover", 1, short=True).events
    sink = JsonlSink(tmp_path / "incidents.jsonl")
    for event in events:
        sink.emit(event)
    sink.close()
    lines = [orjson.loads(x) for x in (tmp_path / "incidents.jsonl").read_bytes().splitlines()]
    incident_events = [e for e in events if isinstance(e, IncidentEvent)]
    assert len(lines) == len(incident_events) > 0
    assert lines[0]["kind"] == Change.OPENED and lines[-1]["kind"] == Change.RESOLVED
    assert {line["id"] for line in lines} == {incident_events[0].incident.id}
    assert lines[-1] == {
        "type": "incident",
        "kind": "resolved",
        "at": incident_events[-1].at,
        "text": incident_events[-1].text,
        **orjson.loads(orjson.dumps(incident_events[-1].incident.to_dict())),
    }

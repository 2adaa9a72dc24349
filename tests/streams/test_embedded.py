from __future__ import annotations

import orjson

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


def test_incident_events_reach_a_jsonl_file(tmp_path, replayed):
    events = replayed("reference-2022-10-04", 1).events
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

"""Every reason a worker refuses a message for, one case each, on the path a
worker takes: ``decode`` (with the topic's family) then the detection stage.
The decoder's reasons are also tested field by field in ``test_schema``."""

from __future__ import annotations

import json
from dataclasses import replace

import orjson
import pytest

from models.changes import ChangeEvent
from models.detect_stage import DetectStage
from models.schema import MAX_MESSAGE_BYTES, REASONS, Rejection, Telemetry, decode, encode

T = 1_664_887_505.0


def pods(entity: str = "user-svc", time: float = T, **metrics: list[float]) -> Telemetry:
    return Telemetry(
        "pods", entity, time, [time - 5.0, time], metrics or {"error_rate": [0.01] * 2}
    )


def wire(tel: Telemetry, **override: object) -> bytes:
    return orjson.dumps(tel.to_wire() | override)


def take(stage: DetectStage, raw: bytes, family: str = "pods") -> Telemetry | Rejection | list:
    """What the detect agent does with one message's bytes."""
    tel = decode(raw, stage.topology.knows, family)
    return tel if isinstance(tel, Rejection) else stage.process(tel)


def reason(outcome: object) -> str | None:
    return outcome.reason if isinstance(outcome, Rejection) else None


# Bytes refused whatever came before them on the partition.
STATELESS = {
    "not_json": b"{not json",
    "not_object": b"[1, 2, 3]",
    "missing_field": orjson.dumps({"v": 1, "family": "pods", "entity": "user-svc", "time": T}),
    "unsupported_version": wire(pods(), v=2),
    "unknown_family": wire(pods(), family="kafka"),
    "wrong_type": wire(pods(), time="soon"),
    "unknown_entity": wire(pods("ghost-svc/pod-99")),
    "unknown_metric": encode(pods(cpu_load=[0.5, 0.5])),
    "implausible_time": wire(pods(), time=1e12),  # the year 33658
    "non_finite": json.dumps(pods().to_wire() | {"metrics": {"restarts": [0, float("nan")]}})
    .replace(" ", "")
    .encode(),
    "negative_value": encode(pods(restarts=[0.0, -1.0])),  # a negative counter
    "ratio_out_of_range": encode(pods(error_rate=[0.5, 1.5])),
    "length_mismatch": encode(pods(error_rate=[0.5])),
    "oversized": encode(pods()) + b" " * MAX_MESSAGE_BYTES,
    "wrong_topic": encode(replace(pods(), family="redis", metrics={"latency_ms": [1.0, 1.0]})),
}


@pytest.mark.parametrize("expected", sorted(STATELESS))
def test_refused_whatever_the_state(topology, expected):
    assert reason(take(DetectStage(topology), STATELESS[expected])) == expected


def test_too_far_ahead(topology):
    stage = DetectStage(topology)
    limit = stage.config.max_ahead_s
    assert reason(take(stage, encode(pods()))) is None
    assert reason(take(stage, encode(pods(time=T + limit)))) is None  # the limit itself
    assert reason(take(stage, encode(pods(time=T + limit + limit + 0.1)))) == "too_far_ahead"


SENDERS = ["user-svc", "music-svc", "playlist-svc", "api-gateway", "postgres"]


def steady(stage: DetectStage, start: float, batches: int) -> list[str | None]:
    """Every sender's batches, 5 s apart, from ``start``: the reasons they were refused."""
    return [
        reason(take(stage, encode(pods(e, time=start + 5.0 * i))))
        for i in range(batches)
        for e in SENDERS
    ]


def test_one_message_dated_ahead_moves_no_one_s_event_time(topology):
    stage = DetectStage(topology)
    assert set(steady(stage, T, 10)) == {None}
    # One sender's batch an hour ahead, inside the bound of old: refused.
    forged = pods("music-svc", time=T + 3599.0)
    assert reason(take(stage, encode(forged))) == "too_far_ahead"
    # Everyone goes on as before, the forged sender too: nothing is late.
    assert set(steady(stage, T + 50.0, 10)) == {None}
    assert stage.late_points == 0
    assert stage.windows.watermark == T + 95.0


def test_messages_dated_ahead_from_a_minority_of_senders_move_nothing(topology):
    stage = DetectStage(topology)
    assert set(steady(stage, T, 10)) == {None}
    for sender in SENDERS[:2]:  # two of five, each twice
        for ahead in (3599.0, 3604.0):
            assert reason(take(stage, encode(pods(sender, time=T + ahead)))) == "too_far_ahead"
    assert set(steady(stage, T + 50.0, 10)) == {None}
    assert stage.late_points == 0


def test_a_stream_that_truly_jumps_is_followed_once_half_its_senders_agree(topology):
    stage = DetectStage(topology)
    steady(stage, T, 10)
    # Every sender back after an hour's silence: the first two of five are
    # refused, then the stream goes on from there.
    after = steady(stage, T + 3600.0, 3)
    assert after == ["too_far_ahead"] * 2 + [None] * 13
    assert stage.windows.watermark == T + 3610.0
    # A sender alone is followed from its second batch.
    alone = DetectStage(topology)
    assert reason(take(alone, encode(pods(time=T)))) is None
    assert reason(take(alone, encode(pods(time=T + 3600.0)))) == "too_far_ahead"
    assert reason(take(alone, encode(pods(time=T + 3605.0)))) is None


def test_late(topology):
    stage = DetectStage(topology)
    for i in range(10):
        assert reason(take(stage, encode(pods(time=T + 10.0 * i)))) is None
    # Behind the windows already decided (watermark less the 5 s lateness).
    assert reason(take(stage, encode(pods("music-svc", time=T + 30.0)))) == "late"
    # Within the allowed lateness: taken.
    assert reason(take(stage, encode(pods("music-svc", time=T + 89.0)))) is None


def test_duplicate(topology):
    stage = DetectStage(topology)
    first = encode(pods())
    assert reason(take(stage, first)) is None
    assert reason(take(stage, first)) == "duplicate"
    # Same entity and time, other columns: a different batch.
    assert reason(take(stage, encode(pods(request_rate=[10.0, 12.0])))) is None
    # Once the stream is past it, a repeat is late: it can change nothing either way.
    for i in range(1, 10):
        take(stage, encode(pods(time=T + 10.0 * i)))
    assert reason(take(stage, first)) == "late"
    assert len(stage.batches) <= 3  # only batches still in open windows are remembered


def test_an_entity_of_another_family(topology):
    # Known to the topology as a Redis node, sent as pods on the pods topic.
    redis_node = next(e for e, f in topology.family_of.items() if f == "redis")
    stage = DetectStage(topology)
    outcome = take(stage, encode(pods(redis_node)))
    assert reason(outcome) == "unknown_entity"
    assert "redis" in outcome.detail


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_on_the_wire(literal):
    raw = encode(pods()).replace(b"0.01]", literal + b"]", 1)
    assert literal in raw
    assert reason(decode(raw)) == "non_finite"
    assert reason(decode(raw[:-1])) == "not_json"  # and not JSON otherwise either


def test_oversized_is_counted_in_bytes():
    raw = encode(pods())
    assert isinstance(decode(raw + b" " * (MAX_MESSAGE_BYTES - len(raw))), Telemetry)
    assert reason(decode(raw + b" " * (MAX_MESSAGE_BYTES - len(raw) + 1))) == "oversized"


# Change events refused, on the path the worker's change agent takes.
CHANGE = {"v": 1, "time": T, "component": "lb", "kind": "config"}
CHANGES = {
    "unknown_change_kind": orjson.dumps(CHANGE | {"kind": "reboot"}),
    "unknown_entity": orjson.dumps(CHANGE | {"component": "ghost-svc"}),
    "missing_field": orjson.dumps({k: v for k, v in CHANGE.items() if k != "kind"}),
    "wrong_type": orjson.dumps(CHANGE | {"who": 7}),
    "implausible_time": orjson.dumps(CHANGE | {"time": 1e12}),
    "not_json": b'{"v": 1,',
}


@pytest.mark.parametrize("expected", sorted(CHANGES))
def test_a_change_event_refused(topology, expected):
    assert reason(ChangeEvent.parse(CHANGES[expected], topology.names)) == expected
    assert isinstance(ChangeEvent.parse(orjson.dumps(CHANGE), topology.names), ChangeEvent)


def test_every_reason_is_covered_here(topology):
    covered = set(STATELESS) | {"too_far_ahead", "late", "duplicate"} | set(CHANGES)
    assert covered == set(REASONS)
    assert all(REASONS[r] for r in REASONS)

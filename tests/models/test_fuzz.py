"""Fuzzing the way in: arbitrary bytes, arbitrary JSON and near-valid messages
through the decoder, the validators and the detection stage, as a worker
takes them. Nothing may raise, and every refusal names a reason from
``models.schema.REASONS``.

Deterministic (``derandomize``), so CI runs the same inputs every time. Each
test prints how many inputs it ran; ``FUZZ_SCALE`` (default 1) multiplies
them. Run ``pytest -n 0 -s tests/models/test_fuzz.py`` to see the figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.detect_stage import DetectStage
from models.schema import (
    LATEST_TS,
    MAX_BATCH_SPAN_S,
    MAX_MESSAGE_BYTES,
    REASONS,
    WIRE_METRICS,
    Rejection,
    Telemetry,
    decode,
    validate,
)
from tests.conftest import FUZZ_SCALE as SCALE
from tests.models.test_schema import JSON_VALUES

FUZZ = settings(
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
FAMILIES = tuple(WIRE_METRICS)
T0 = 1_664_887_505.0  # 2022-10-04
PHRASES = ["is it down?", "new album!", "login broken", "", "🎵", "x" * 50]

# Inputs per fuzz test; each test fails if it ran fewer.
TARGETS = {
    "arbitrary bytes": 64_000,
    "arbitrary JSON": 20_000,
    "near-valid messages": 12_000,
    "message streams": 4_000,  # of 1 to 12 messages each, counted once
}


# Arbitrary JSON, mostly flat (cheap to generate), a quarter deeply nested.
KEYS = st.sampled_from(["v", "family", "entity", "time", "ts", "metrics", "text", "x", ""])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from([1, "pods", "redis", "social", "user-svc", T0])
)
FLAT_JSON = (
    st.dictionaries(
        KEYS,
        SCALARS | st.lists(SCALARS, max_size=5) | st.dictionaries(KEYS, st.lists(SCALARS)),
        max_size=7,
    )
    | st.lists(SCALARS, max_size=5)
    | SCALARS
)
ANY_JSON = st.integers(0, 3).flatmap(lambda i: JSON_VALUES if i == 0 else FLAT_JSON)


def check(result: object) -> Rejection | Telemetry | list[Any]:
    """The outcome of decoding or processing: typed, or refused for a known reason."""
    if isinstance(result, Rejection):
        assert result.reason in REASONS, result
        assert isinstance(result.detail, str) and result.detail, result
    else:
        assert isinstance(result, Telemetry | list), result
    return result  # type: ignore[return-value]


def drive(name: str, strategy: st.SearchStrategy[Any], test: Callable[[Any], None]) -> int:
    """Run ``test`` on the generated inputs ``TARGETS`` asks; print how many ran."""
    n = max(1, int(TARGETS[name] * SCALE))
    count = 0

    @settings(FUZZ, max_examples=n)
    @given(strategy)
    def run(value: Any) -> None:
        nonlocal count
        count += 1
        test(value)

    began = time.perf_counter()
    run()
    print(f"\nfuzz {name}: {count:,} inputs in {time.perf_counter() - began:.1f} s, 0 crashes")
    assert count >= n
    return count


@pytest.fixture(scope="module")
def entities(topology) -> dict[str, list[str]]:
    by_family: dict[str, list[str]] = {f: [] for f in FAMILIES}
    for entity, family in sorted(topology.family_of.items()):
        by_family[family].append(entity)
    return by_family


# ---------------------------------------------------------------------------
# Near-valid messages for the shipped topology


@st.composite
def wire_bodies(draw, entities: dict[str, list[str]], base: float = T0) -> dict[str, Any]:
    """A valid message of a known entity, on or around ``base``."""
    family = draw(st.sampled_from(FAMILIES))
    time = base + draw(st.floats(0.0, 120.0))
    offsets = draw(st.lists(st.floats(0.0, 30.0), max_size=6))
    ts = sorted(time - o for o in offsets)
    body: dict[str, Any] = {
        "v": 1,
        "family": family,
        "entity": draw(st.sampled_from(entities[family])),
        "time": time,
        "ts": ts,
    }
    if family == "social":
        body["text"] = draw(st.lists(st.sampled_from(PHRASES), min_size=len(ts), max_size=len(ts)))
        return body
    specs = WIRE_METRICS[family]
    names = draw(st.lists(st.sampled_from(sorted(specs)), min_size=1, unique=True))
    body["metrics"] = {
        name: draw(
            st.lists(
                st.floats(0.0, 1.0 if specs[name].ratio else 1e6),
                min_size=len(ts),
                max_size=len(ts),
            )
        )
        for name in names
    }
    return body


BAD_NUMBERS = [math.nan, math.inf, -math.inf, -1.0, -1e-300, 1.5, 1e308, "1", None, True, [1.0]]


def _column(body: dict[str, Any]) -> list[Any] | None:
    metrics = body.get("metrics")
    if isinstance(metrics, dict) and metrics:
        col = metrics[sorted(metrics)[0]]
        return col if isinstance(col, list) else None
    return None


@st.composite
def mutated(draw, body: dict[str, Any], entities: dict[str, list[str]]) -> dict[str, Any]:
    """The message with up to two things wrong with it, of every kind a
    producer, a network or an attacker could get wrong."""
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(
            st.sampled_from(
                [
                    "replace",
                    "delete",
                    "bad_number",
                    "unknown_metric",
                    "other_family",
                    "other_entity",
                    "version",
                    "far_time",
                    "ts_outside",
                    "length",
                    "many_points",
                ]
            )
        )
        key = draw(st.sampled_from(["v", "family", "entity", "time", "ts", "metrics", "text"]))
        col = _column(body)
        if kind == "replace":
            body[key] = draw(JSON_VALUES)
        elif kind == "delete":
            body.pop(key, None)
        elif kind == "bad_number" and col:
            col[draw(st.integers(0, len(col) - 1))] = draw(st.sampled_from(BAD_NUMBERS))
        elif kind == "bad_number" and isinstance(body.get("ts"), list) and body["ts"]:
            body["ts"][0] = draw(st.sampled_from(BAD_NUMBERS))
        elif kind == "unknown_metric" and isinstance(body.get("metrics"), dict):
            # As long as the timestamps, when an earlier change left them a list.
            ts = body.get("ts")
            body["metrics"][draw(st.sampled_from(["cpu", "success_ratio", "Error_Rate"]))] = [
                0.0
            ] * (len(ts) if isinstance(ts, list) else 1)
        elif kind == "other_family":
            body["family"] = draw(st.sampled_from(FAMILIES))
        elif kind == "other_entity":
            family = draw(st.sampled_from(FAMILIES))
            body["entity"] = draw(
                st.sampled_from([*entities[family], "ghost-svc", "redis/node-99"])
            )
        elif kind == "version":
            body["v"] = draw(st.sampled_from([0, 2, "1", 1.0, True, None]))
        elif kind == "far_time":
            body["time"] = draw(st.sampled_from([0.0, -1.0, LATEST_TS + 1, 1e18, 1e9 - 1]))
        elif kind == "ts_outside" and isinstance(body.get("time"), float):
            body["ts"] = [body["time"] + draw(st.sampled_from([0.5, -MAX_BATCH_SPAN_S - 1]))]
        elif kind == "length" and col is not None:
            col.append(0.0)
        elif kind == "many_points" and isinstance(body.get("time"), float):
            n = draw(st.sampled_from([10_001, 2_000]))
            body["ts"] = [body["time"]] * n
            if isinstance(body.get("metrics"), dict):
                body["metrics"] = {m: [0.0] * n for m in body["metrics"]}
    return body


def near_valid_messages(entities: dict[str, list[str]], base: float = T0) -> Any:
    return wire_bodies(entities, base).flatmap(lambda b: mutated(b, entities))


def _raw(body: object, pad: bool) -> bytes:
    raw = orjson.dumps(body)
    # Oversized: the same message padded with whitespace past the limit.
    return raw + b" " * (MAX_MESSAGE_BYTES + 1 - len(raw)) if pad else raw


def take(stage: DetectStage, family: str, raw: bytes, knows: Callable[[str], bool]) -> object:
    """What the detect agent does with one message's bytes."""
    tel = check(decode(raw, knows, family))
    return tel if isinstance(tel, Rejection) else check(stage.process(tel))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The fuzz tests


def test_arbitrary_bytes(topology):
    def test(raw: bytes) -> None:
        check(decode(raw, topology.knows, "pods"))

    drive("arbitrary bytes", st.binary(max_size=400), test)


# About 60 s at full scale (FUZZ_SCALE=1, make test): its share of the 100,000
# inputs; make check runs a tenth.
def test_arbitrary_json(topology):
    def test(body: Any) -> None:
        check(validate(body, topology.knows))
        check(decode(orjson.dumps(body), topology.knows, "redis"))

    drive("arbitrary JSON", ANY_JSON, test)


def test_near_valid_messages_through_the_detection_stage(topology, entities):
    def test(args: tuple[dict[str, Any], str, bool]) -> None:
        body, topic_family, pad = args
        check(validate(body, topology.knows))  # NaN and infinities reach this path only
        stage = DetectStage(topology)
        take(stage, topic_family, _raw(body, pad), topology.knows)

    strategy = st.tuples(
        near_valid_messages(entities),
        st.sampled_from(FAMILIES),
        st.integers(0, 99).map(lambda n: n == 0),  # 1 in 100 oversized
    )
    drive("near-valid messages", strategy, test)


@st.composite
def streams(draw, entities: dict[str, list[str]]) -> list[tuple[str, bytes]]:
    """A partition's worth of messages: mostly valid and in time order, with
    bad ones, repeats, stragglers and leaps ahead mixed in."""
    out: list[tuple[str, bytes]] = []
    base = T0
    for _ in range(draw(st.integers(1, 12))):
        step = draw(st.sampled_from(["next", "next", "next", "repeat", "late", "leap"]))
        if step == "repeat" and out:
            out.append(out[draw(st.integers(0, len(out) - 1))])
            continue
        if step == "late":
            at = base - draw(st.floats(20.0, 600.0))
        elif step == "leap":
            at = base + draw(st.sampled_from([3_599.0, 3_700.0, 86_400.0]))
        else:
            base += draw(st.floats(0.0, 15.0))
            at = base
        body = draw(near_valid_messages(entities, at))
        family = body.get("family") if body.get("family") in FAMILIES else "pods"
        out.append((str(family), _raw(body, pad=False)))
    return out


def test_streams_through_the_detection_stage(topology, entities):
    decoded = 0

    def test(messages: list[tuple[str, bytes]]) -> None:
        nonlocal decoded
        decoded += len(messages)
        stage = DetectStage(topology)
        accepted: list[bytes] = []
        samples = 0
        for family, raw in messages:
            outcome = take(stage, family, raw, topology.knows)
            if isinstance(outcome, Rejection):
                continue
            tel = decode(raw, topology.knows, family)
            assert isinstance(tel, Telemetry)
            # The same batch is never folded in twice.
            assert raw not in accepted or not tel.ts, raw
            accepted.append(raw)
            samples += tel.samples
        # Whatever was not refused was counted: nothing dropped silently.
        assert stage.samples == samples
        check(stage.finish())

    drive("message streams", streams(entities), test)
    print(f"fuzz message streams: {decoded:,} messages in them")


def test_the_fuzz_tests_run_at_least_100_000_inputs():
    assert sum(TARGETS.values()) >= 100_000

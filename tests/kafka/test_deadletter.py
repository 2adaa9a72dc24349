"""Bad input on a real broker: 10 000 messages, good and bad of every kind,
through one worker. Every bad one lands in the dead-letter topic once,
verbatim, with its reason and where it came from; every good one is folded
into the models once; the worker's counters agree."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.kafka import WorkerProcess, worker_env
from infra import kafka
from infra.kafka import TELEMETRY
from models.schema import MAX_MESSAGE_BYTES, REASONS, WIRE_METRICS, Telemetry, encode
from producers.sources.simulator import Simulator
from tests.kafka.conftest import Namespace, _free_port

TOTAL = 10_000
BAD = 2_000
TIMEOUT_S = 600


@dataclass(frozen=True)
class Planned:
    topic: str  # without the test's prefix
    key: bytes
    value: bytes
    reason: str | None  # None: a good message
    samples: int = 0


def _body(tel: Telemetry, **override: Any) -> dict[str, Any]:
    body = tel.to_wire()
    body.update(override)
    return body


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def _shifted(tel: Telemetry, dt: float) -> Telemetry | None:
    if not tel.ts:
        return None
    return replace(tel, time=tel.time + dt, ts=[t + dt for t in tel.ts])


def _metric(tel: Telemetry, want: Callable[[Any], bool]) -> str | None:
    names = [n for n, spec in WIRE_METRICS[tel.family].items() if want(spec)]
    return names[0] if names and tel.ts else None


def _with_metric(tel: Telemetry, name: str | None, value: float) -> bytes | None:
    if name is None:
        return None
    return orjson.dumps(_body(tel, metrics={name: [value] * len(tel.ts)}))


def _other_family(tel: Telemetry) -> str:
    return next(f for f in TELEMETRY if f != tel.family)


# One maker per kind of bad message: from the good message just planned, the
# bad one's family topic, key, bytes (None: not applicable to this message).
Maker = Callable[[Telemetry], tuple[str, bytes, bytes | None]]
MAKERS: list[tuple[str, Maker]] = [
    ("not_json", lambda t: (t.family, b"", b"{not json: " + t.entity.encode())),
    ("not_object", lambda t: (t.family, b"", orjson.dumps([t.entity, t.time]))),
    ("missing_field", lambda t: (t.family, b"", orjson.dumps(_without(_body(t), "ts")))),
    ("unsupported_version", lambda t: (t.family, b"", orjson.dumps(_body(t, v=2)))),
    ("unknown_family", lambda t: (t.family, b"", orjson.dumps(_body(t, family="kafka")))),
    ("wrong_type", lambda t: (t.family, b"", orjson.dumps(_body(t, time="soon")))),
    ("unknown_entity", lambda t: (t.family, b"", orjson.dumps(_body(t, entity="ghost/pod-99")))),
    (
        "unknown_metric",
        lambda t: (t.family, b"", _with_metric(t, "cpu_load" if t.family != "social" else None, 0)),
    ),
    ("implausible_time", lambda t: (t.family, b"", orjson.dumps(_body(t, time=1e12)))),
    (
        "non_finite",  # as Python's json writes a NaN
        lambda t: (t.family, b"", json.dumps(_body(t, metrics={"x": [float("nan")]})).encode()),
    ),
    (
        "negative_value",  # a negative counter
        lambda t: (t.family, b"", _with_metric(t, _metric(t, lambda s: s.counter), -3.0)),
    ),
    (
        "ratio_out_of_range",
        lambda t: (t.family, b"", _with_metric(t, _metric(t, lambda s: s.ratio), 1.5)),
    ),
    (
        "length_mismatch",
        lambda t: (t.family, b"", orjson.dumps(_body(t, ts=[*t.ts, t.time])) if t.ts else None),
    ),
    (
        "oversized",
        lambda t: (t.family, b"", encode(t) + b" " * (MAX_MESSAGE_BYTES + 1 - len(encode(t)))),
    ),
    (
        "oversized",  # over a produce request once decompressed: its dead letter is cut
        lambda t: (t.family, b"", encode(t) + b" " * 1_100_000),
    ),
    ("wrong_topic", lambda t: (_other_family(t), t.entity.encode(), encode(t))),
    (
        "too_far_ahead",  # two hours ahead of the partition's stream
        lambda t: (t.family, t.entity.encode(), _encoded(_shifted(t, 7200.37))),
    ),
    (
        "late",  # five minutes behind windows already decided
        lambda t: (t.family, t.entity.encode(), _encoded(_shifted(t, -300.37))),
    ),
    ("duplicate", lambda t: (t.family, t.entity.encode(), encode(t))),
]


def _encoded(tel: Telemetry | None) -> bytes | None:
    return None if tel is None else encode(tel)


def plan(good: list[Telemetry]) -> list[Planned]:
    """The good messages in order, bad ones spread evenly among them, kinds in turn.

    A bad one that depends on the partition's state (late, ahead, duplicate)
    has the key of the good message it follows, so it lands after it.
    """
    out: list[Planned] = []
    kinds = itertools.cycle(MAKERS)
    reason, make = next(kinds)
    bads = 0
    for i, tel in enumerate(good):
        family_topic = TELEMETRY[tel.family]
        out.append(Planned(family_topic, tel.entity.encode(), encode(tel), None, tel.samples))
        if bads >= BAD or bads * len(good) >= (i + 1) * BAD:
            continue
        family, key, value = make(tel)
        if value is None:
            continue  # this kind does not apply to this message: try the next one
        out.append(Planned(TELEMETRY[family], key or tel.entity.encode(), value, reason))
        bads += 1
        reason, make = next(kinds)
    return out


async def send(
    ns: Namespace, planned: list[Planned], compression: str = "lz4"
) -> list[tuple[str, int, int]]:
    """Send in order, one producer; where each landed: topic, partition, offset."""
    async with kafka.producer(
        ns.settings,
        acks="all",
        enable_idempotence=True,
        compression_type=compression,
        linger_ms=20,
        max_request_size=4 * 1024 * 1024,
    ) as producer:
        futures = [await producer.send(ns.topic(p.topic), p.value, key=p.key) for p in planned]
        landed = await asyncio.gather(*futures)
    return [(m.topic, m.partition, m.offset) for m in landed]


def counters(port: int) -> dict[str, dict[tuple[str, ...], float]]:
    """The worker's counters from its /metrics/ page: name -> labels -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = tuple(v for _, v in sorted(sample.labels.items()))
                out.setdefault(sample.name, {})[labels] = sample.value
    return out


def test_every_bad_message_is_dead_lettered_and_every_good_one_processed(
    namespace: Namespace, scenarios, topology, business
):
    sim = Simulator(scenarios["reference-2022-10-04"], topology, business, 1)
    good = list(itertools.islice(sim.messages(), TOTAL - BAD))
    planned = plan(good)
    assert len(planned) == TOTAL
    bad = [p for p in planned if p.reason is not None]
    assert len(bad) == BAD
    # Change events have their own topic and test (test_changes.py).
    telemetry_reasons = set(REASONS) - {"unknown_change_kind"}
    assert {p.reason for p in bad} == telemetry_reasons, "a kind of bad input is not sent"

    s = namespace.settings
    topics = kafka.telemetry_topics(s).values()
    asyncio.run(kafka.ensure_topics(s, dict.fromkeys(topics, s.partitions)))
    landed = asyncio.run(send(namespace, planned))
    sent = dict(zip(landed, planned, strict=True))
    good_at = Counter((t, p) for (t, p, _), m in sent.items() if m.reason is None)

    port = _free_port()
    env = worker_env(s) | {"FORESHOCK_WEB_ENABLED": "true", "FORESHOCK_WEB_PORT": str(port)}
    with WorkerProcess(env, namespace.workdir / "worker.log", namespace.workdir) as worker:

        def taken() -> float:
            try:
                c = counters(port)
            except OSError:
                return 0  # the web server is not up yet
            processed = c.get("foreshock_processed_messages_total", {})
            rejected = c.get("foreshock_rejected_messages_total", {})
            return sum(processed.values()) + sum(rejected.values())

        namespace.wait_for("all 10 000 messages", lambda: taken() >= TOTAL, TIMEOUT_S, [worker])
        dead = namespace.wait_for(
            "the dead letters",
            lambda: (r := namespace.records("foreshock.deadletter")) and len(r) >= BAD and r,
            120,
            [worker],
        )
        time.sleep(5)  # anything delivered twice would show by now
        final = counters(port)
        assert taken() == TOTAL

    # The dead-letter topic: every bad message, once, verbatim, with its origin and reason.
    dead = namespace.records("foreshock.deadletter")
    origins = []
    cut = 0
    for record in dead:
        h = {k: v.decode() for k, v in record.headers}
        origin = (h["topic"], int(h["partition"]), int(h["offset"]))
        origins.append(origin)
        expected = sent.get(origin)
        assert expected is not None and expected.reason is not None, (origin, h)
        assert h["reason"] == expected.reason, (origin, h, expected.value[:200])
        assert h["detail"] and len(h["detail"]) <= 1100
        assert h["id"] == ":".join(map(str, origin))
        if "sha256" in h:  # too large to keep whole: a prefix, the size and the digest
            cut += 1
            assert len(expected.value) > 900_000
            assert expected.value.startswith(record.value) and len(record.value) < 600_000
            assert int(h["original_size"]) == len(expected.value)
            assert h["sha256"] == hashlib.sha256(expected.value).hexdigest()
        else:
            assert record.value == expected.value
        assert record.key == h["topic"].encode()
    should = {o for o, p in sent.items() if p.reason is not None}
    missing, twice = len(should - set(origins)), len(origins) - len(set(origins))
    assert (missing, twice) == (0, 0)
    assert set(origins) == should
    assert cut == sum(len(p.value) > 900_000 for p in bad) > 0
    assert "MessageSizeTooLarge" not in worker.text()  # no dead letter was too large to send

    # The counters: every good message processed once, every rejection counted by reason.
    processed = final["foreshock_processed_messages_total"]
    assert {(t, int(p)): n for (p, t), n in processed.items() if n} == good_at
    rejected = {r: n for (r,), n in final["foreshock_rejected_messages_total"].items() if n}
    assert rejected == Counter(p.reason for p in bad)
    samples = sum(final["foreshock_processed_samples_total"].values())
    assert samples == sum(p.samples for p in planned)

    dead_by_reason = Counter(dict(r.headers)["reason"].decode() for r in dead)
    print(
        f"\nsent {TOTAL:,}: {TOTAL - BAD:,} good, {BAD:,} bad "
        f"({len(dead_by_reason)} reasons: {dict(sorted(dead_by_reason.items()))}); "
        f"dead-lettered {len(dead):,} (distinct origins {len(set(origins)):,}); "
        f"processed {int(sum(processed.values())):,} "
        f"({int(samples):,} samples); dead letters missing {missing}, twice {twice}; "
        f"{cut} over a produce request kept as prefix, size and SHA-256"
    )

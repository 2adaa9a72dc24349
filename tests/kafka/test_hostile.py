"""Hostile input on a real broker, while the reference outage unfolds.

Around the fault of the reference day, 51 200 bad messages are mixed into
the valid telemetry, in the same partitions: 1 000 over the size limit
(gzip-compressed on the wire, some decompressing to 3 MB), 200 whose bad
field would echo into a rejection's detail 40 000 control characters, and a
burst of 50 000 small malformed ones. One worker must take them all without
a crash: every bad message dead-lettered once with its reason, counters and
topic agreeing, every valid message processed, windows closing all along,
the incident opening as it does without the attack, and a log that stays
small.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterator

import orjson
from aiokafka.admin import NewTopic

from bench.kafka import WorkerProcess, worker_env
from infra import kafka
from infra.kafka import TELEMETRY
from infra.settings import Settings
from models.incident import Change, IncidentEvent
from models.pipeline import DetectionPipeline
from models.schema import MAX_MESSAGE_BYTES, Telemetry, encode
from producers.sources.simulator import Simulator
from streams.embedded import EmbeddedEngine
from streams.sinks.memory import MemorySink
from tests.kafka.conftest import Namespace, _free_port
from tests.kafka.test_deadletter import Planned, counters, send

SCENARIO = "reference-2022-10-04"
WINDOW_S = 10.0
OVERSIZED, AMPLIFYING, BURST = 1_000, 200, 50_000
# The dead-letter topic takes less than a produce request: letters must fit it.
TOPIC_MESSAGE_BYTES = 300_000
LOG_BYTES_PER_REJECTION = 20  # the whole worker log, over the messages it refused
TIMEOUT_S = 900


def oversized(tel: Telemetry, i: int) -> bytes:
    """Valid telemetry padded past the limit: one in 20 decompresses to 3 MB,
    one in 50 is padded with noise that no compression shrinks."""
    size = 3_000_000 if i % 20 == 0 else MAX_MESSAGE_BYTES + 50_000 + i
    body = encode(tel)
    if i % 50 == 25:
        return body + base64.b64encode(random.Random(i).randbytes(size))[: size - len(body)]
    return body + b" " * (size - len(body))


def amplifying(tel: Telemetry) -> bytes:
    """An entity of 40 000 control characters: four each in a Python repr."""
    return orjson.dumps({**tel.to_wire(), "entity": "\x01" * 40_000})


def hostile(kind: str, i: int, tel: Telemetry) -> bytes:
    if kind == "oversized":
        return oversized(tel, i)
    if kind == "amplifying":
        return amplifying(tel)
    return b"{not json " + str(i).encode()


def attack(good: list[Telemetry], first: int, last: int) -> Iterator[Planned]:
    """The valid messages in order, with the bad ones spread evenly over
    ``good[first:last]`` (each kind evenly too), each keyed like the valid
    message it follows."""
    kinds = {"oversized": OVERSIZED, "amplifying": AMPLIFYING, "burst": BURST}
    bad = sorted((i / n, kind, i) for kind, n in kinds.items() for i in range(n))
    per = len(bad) / (last - first)
    made = 0
    for n, tel in enumerate(good):
        topic, key = TELEMETRY[tel.family], tel.entity.encode()
        yield Planned(topic, key, encode(tel), None, tel.samples)
        while first <= n < last and made < min(len(bad), (n - first + 1) * per):
            _, kind, i = bad[made]
            yield Planned(topic, key, hostile(kind, i, tel), kind)
            made += 1


def embedded_opening(good: list[Telemetry], topology, business) -> IncidentEvent:
    """When the embedded engine opens the incident on the same valid telemetry."""
    memory = MemorySink()
    EmbeddedEngine(DetectionPipeline(topology, business), [memory]).run(good)
    opened = [e for e in memory.events if isinstance(e, IncidentEvent) and e.kind is Change.OPENED]
    assert len(opened) == 1, opened
    return opened[0]


async def small_dead_letter_topic(settings: Settings) -> None:
    async with kafka.admin(settings) as admin:
        limit = {"max.message.bytes": str(TOPIC_MESSAGE_BYTES)}
        topic = settings.topic(kafka.DEADLETTER)
        await admin.create_topics([NewTopic(topic, settings.partitions, 1, topic_configs=limit)])


# About 60-70 s: 51,200 hostile messages among a slice of the reference
# day around the fault, each dead-lettered, and the outage still paged.
def test_a_worker_under_attack_dead_letters_everything_and_still_pages(
    namespace: Namespace, scenarios, topology, business
):
    truth = scenarios[SCENARIO].truth
    assert truth.fault_start is not None and truth.impact_start is not None
    sim = Simulator(scenarios[SCENARIO], topology, business, 1)
    good = [
        m for m in sim.messages() if truth.fault_start - 1800 <= m.time <= truth.impact_start + 600
    ]
    # The attack runs from ten minutes before the fault to five after it.
    times = [m.time for m in good]
    first = next(i for i, t in enumerate(times) if t >= truth.fault_start - 600)
    last = next(i for i, t in enumerate(times) if t >= truth.fault_start + 300)
    planned = list(attack(good, first, last))
    bad = [p for p in planned if p.reason is not None]
    assert len(bad) == OVERSIZED + AMPLIFYING + BURST
    usual = embedded_opening(good, topology, business)

    s = namespace.settings
    asyncio.run(
        kafka.ensure_topics(s, dict.fromkeys(kafka.telemetry_topics(s).values(), s.partitions))
    )
    asyncio.run(small_dead_letter_topic(s))
    landed = asyncio.run(send(namespace, planned, compression="gzip"))
    sent = dict(zip(landed, planned, strict=True))
    good_at = Counter((t, p) for (t, p, _), m in sent.items() if m.reason is None)

    port = _free_port()
    env = worker_env(s) | {"FORESHOCK_WEB_ENABLED": "true", "FORESHOCK_WEB_PORT": str(port)}
    log = namespace.workdir / "worker.log"
    with WorkerProcess(env, log, namespace.workdir) as worker:

        def taken() -> float:
            try:
                c = counters(port)
            except OSError:
                return 0  # the web server is not up yet
            return sum(c.get("foreshock_processed_messages_total", {}).values()) + sum(
                c.get("foreshock_rejected_messages_total", {}).values()
            )

        namespace.wait_for("every message", lambda: taken() >= len(planned), TIMEOUT_S, [worker])
        namespace.wait_for(
            "the dead letters",
            lambda: (
                sum(asyncio.run(kafka.end_offsets(s, [namespace.topic(kafka.DEADLETTER)])).values())
                >= len(bad)
            ),
            120,
            [worker],
        )

        def opened() -> list[dict]:
            events = namespace.read(kafka.INCIDENTS)
            return [e for e in events if e.get("type") == "incident" and e["kind"] == "opened"]

        namespace.wait_for("the incident", opened, 300, [worker])
        final = counters(port)
        text = worker.text()
        assert taken() == len(planned)

    # No crash, no restart of an agent, no traceback.
    assert not re.search(r"Traceback|crashed|Restarting", text), worker.tail()

    # Every bad message dead-lettered once, with its reason; nothing else.
    dead = namespace.records(kafka.DEADLETTER)
    origins = Counter()
    reasons = Counter()
    cut = 0
    for record in dead:
        h = {k: v.decode() for k, v in record.headers}
        origin = (h["topic"], int(h["partition"]), int(h["offset"]))
        origins[origin] += 1
        expected = sent[origin]
        reasons[h["reason"]] += 1
        if expected.reason == "oversized":
            assert h["reason"] == "oversized"
        if expected.reason == "burst":
            assert h["reason"] == "not_json"
        assert len(h["detail"]) <= 1100
        if len(expected.value) > TOPIC_MESSAGE_BYTES:  # cut to fit the topic
            assert len(record.value) < TOPIC_MESSAGE_BYTES and "sha256" in h
        if "sha256" in h:
            cut += 1
            assert h["sha256"] == hashlib.sha256(expected.value).hexdigest()
            assert expected.value.startswith(record.value)
        else:
            assert record.value == expected.value
    should = {o for o, p in sent.items() if p.reason is not None}
    assert set(origins) == should
    assert max(origins.values()) == 1

    # The counters agree with the topic, message for message; valid ones all processed.
    rejected = {r: n for (r,), n in final["foreshock_rejected_messages_total"].items() if n}
    assert rejected == dict(reasons)
    assert final.get("foreshock_lost_dead_letters_total", {(): 0})[()] == 0
    processed = final["foreshock_processed_messages_total"]
    assert {(t, int(p)): n for (p, t), n in processed.items() if n} == good_at

    # Windows kept closing while the bad messages were taken.
    letters = sorted(r.timestamp for r in dead)
    windows = sorted(r.timestamp for r in namespace.records(kafka.WINDOWS))
    during = [t for t in windows if letters[0] <= t <= letters[-1]]
    gaps = [b - a for a, b in zip([letters[0], *during], [*during, letters[-1]], strict=True)]
    assert during and max(gaps) <= 10_000, max(gaps)

    # The incident opens when it would have without the attack.
    opened = opened()
    assert len(opened) == 1
    assert opened[0]["id"] == usual.incident.id
    assert abs(opened[0]["opened_at"] - usual.incident.opened_at) <= WINDOW_S
    assert opened[0]["root_cause"] == truth.root_cause

    # A log that stays small: a sample and a count per stretch, never a payload.
    log_bytes = log.stat().st_size
    longest = max(len(line) for line in text.splitlines())
    assert log_bytes / len(bad) <= LOG_BYTES_PER_REJECTION
    assert longest <= 2000
    print(
        f"\nsent {len(planned):,}: {len(planned) - len(bad):,} valid, {len(bad):,} bad "
        f"({OVERSIZED:,} oversized, {AMPLIFYING} amplifying, {BURST:,} burst); "
        f"dead-lettered {len(dead):,} {dict(reasons)}, {cut:,} cut to fit the topic's "
        f"{TOPIC_MESSAGE_BYTES:,} bytes; lost 0; agent restarts 0; "
        f"longest window gap during the attack {max(gaps) / 1000:.1f} s; "
        f"incident opened {opened[0]['opened_at'] - truth.impact_start:+.0f} s from impact "
        f"(without the attack {usual.incident.opened_at - truth.impact_start:+.0f} s); "
        f"log {log_bytes:,} bytes, {log_bytes / len(bad):.2f} per rejection, longest line {longest}"
    )

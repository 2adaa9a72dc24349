"""A crafted record on the detect-state changelog: bytes that would run a
shell command if a snapshot were unpickled. Anyone who can write to that
topic can put one there; the worker must refuse it with a reason, count it,
run nothing, and go on detecting on that partition with models that learn
afresh."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import orjson

from bench.kafka import Reports, WorkerProcess, sources_with_data
from infra import kafka
from models.schema import Telemetry
from streams.checkpoint import OFFSET_BYTES
from tests.conftest import short_span
from tests.kafka.conftest import Namespace, _free_port
from tests.kafka.test_deadletter import counters
from tests.kafka.test_worker import SCENARIO, simulate

EVENT_S = 900  # event seconds of telemetry published: enough for many windows
TIMEOUT_S = 300


def crafted(covers: int, marker: Path) -> bytes:
    """A snapshot record as the worker stores them (the offset it covers, then
    the snapshot), whose snapshot is a pickle that calls ``os.system``.

    Written opcode by opcode: GLOBAL os.system, MARK, STRING, TUPLE, REDUCE, STOP.
    """
    command = f"touch {marker}".encode()
    assert b"'" not in command
    payload = b"cos\nsystem\n(S'" + command + b"'\ntR."
    return covers.to_bytes(OFFSET_BYTES, "big", signed=True) + b"foreshock-snapshot:2:" + payload


async def plant(ns: Namespace, source: str, record: bytes) -> None:
    """Put the record on the detect-state changelog, as the latest snapshot
    of ``source``."""
    changelog = kafka.changelog_topic(ns.settings, kafka.DETECT_STATE)
    partition = int(source.rpartition(":")[2])
    async with kafka.producer(ns.settings, acks="all") as producer:
        # Keys are JSON, as Faust writes a table's string keys.
        key = orjson.dumps(source)
        await producer.send_and_wait(changelog, record, key=key, partition=partition)


def processed_since(ns: Namespace, port: int, firsts: dict[str, int]) -> bool:
    """Whether the worker has folded in every message of each partition, from
    the offset given for it to the partition's end (counted on /metrics/)."""
    try:
        done = counters(port).get("foreshock_processed_messages_total", {})
    except OSError:
        return False  # the web server is not up yet
    for source, first in firsts.items():
        topic, _, partition = source.rpartition(":")
        if done.get((partition, topic), 0) < ns.offsets(source)[1] - first:
            return False
    return True


class FirstStretch(NamedTuple):
    worker: WorkerProcess  # stopped
    sources: set[str]  # the partitions with telemetry
    firsts: dict[str, int]  # the offset each had committed when the worker stopped
    rest: Iterator[Telemetry]  # the telemetry not published yet
    last: float  # event time of the end of the stretch to publish next


def first_stretch(namespace: Namespace, scenarios, topology, business) -> FirstStretch:
    """A first worker learns and snapshots the first half of ``EVENT_S`` of
    the reference outage's short world, until a snapshot covers every
    message, and stops."""
    start, _ = short_span(scenarios[SCENARIO])
    messages = simulate(scenarios, topology, business)
    cut = start + EVENT_S / 2
    namespace.publish(itertools.takewhile(lambda m: m.time <= cut, messages))
    sources = asyncio.run(sources_with_data(namespace.settings))

    def covered() -> bool:
        return all(done == end > 0 for done, end in map(namespace.offsets, sources))

    with namespace.worker("first") as first:
        namespace.wait_for("a snapshot to cover every message", covered, TIMEOUT_S, [first])
    firsts = {s: namespace.offsets(s)[0] for s in sources}
    return FirstStretch(first, sources, firsts, messages, start + EVENT_S)


def test_a_snapshot_that_would_run_code_is_refused_and_the_worker_goes_on(
    namespace: Namespace, scenarios, topology, business, tmp_path
):
    first, sources, firsts, messages, last = first_stretch(namespace, scenarios, topology, business)
    source = sorted(sources)[0]
    # Then someone writes the crafted record where the worker keeps its
    # latest snapshot of one partition, and more telemetry arrives.
    done = firsts[source]
    marker = tmp_path / "pickle-ran"
    asyncio.run(plant(namespace, source, crafted(done - 1, marker)))
    namespace.publish(itertools.takewhile(lambda m: m.time <= last, messages))

    port = _free_port()
    env = {"FORESHOCK_WEB_ENABLED": "true", "FORESHOCK_WEB_PORT": str(port)}
    with namespace.worker("second", env=env) as worker:
        namespace.wait_for(
            "every partition to be processed",
            lambda: processed_since(namespace, port, firsts),
            TIMEOUT_S,
            [worker],
        )
        namespace.wait_for(
            "its windows to be decided",
            lambda: Reports(sources, last).done(namespace.records(kafka.WINDOWS)),
            TIMEOUT_S,
            [worker],
        )
        refused = counters(port)["foreshock_refused_snapshots_total"][()]
        log = worker.text()

    assert not marker.exists(), "a byte read from Kafka was executed"
    assert refused >= 1  # once, or again if the partition came back before a new snapshot
    said = re.search(
        rf"detecting on {re.escape(source)}: the snapshot at offset {done - 1} cannot be "
        rf"restored \((.+)\); going on from offset {done} with models that learn afresh",
        log,
    )
    assert said, log[-3000:]
    print(f"\nrefused, counted, nothing run: {said.group(1)}")
    # The other partitions resume from their snapshots, and none skips a message.
    for other in sources - {source}:
        assert f"detecting on {other}: resumed from the snapshot" in log
    assert "never reached the detectors" not in first.text() + log

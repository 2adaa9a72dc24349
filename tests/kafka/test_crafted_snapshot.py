"""A crafted record on the detect-state changelog: bytes that would run a
shell command if a snapshot were unpickled. Anyone who can write to that
topic can put one there; the worker must refuse it with a reason, count it,
run nothing, and go on detecting on that partition with models that learn
afresh."""

from __future__ import annotations

import asyncio
import itertools
import re
from pathlib import Path

import orjson
import pytest

from bench.kafka import Reports, sources_with_data
from infra import kafka
from streams.checkpoint import OFFSET_BYTES
from tests.kafka.conftest import Namespace, _free_port
from tests.kafka.test_deadletter import counters
from tests.kafka.test_worker import SCENARIO, simulate

pytestmark = pytest.mark.xdist_group("kafka")

EVENT_S = 900  # event seconds of telemetry published: enough for many windows
TIMEOUT_S = 300


def crafted(marker: Path) -> bytes:
    """A snapshot record as the worker stores them (the offset it covers, then
    the snapshot), whose snapshot is a pickle that calls ``os.system``.

    Written opcode by opcode: GLOBAL os.system, MARK, STRING, TUPLE, REDUCE, STOP.
    """
    command = f"touch {marker}".encode()
    assert b"'" not in command
    payload = b"cos\nsystem\n(S'" + command + b"'\ntR."
    covers = (-1).to_bytes(OFFSET_BYTES, "big", signed=True)  # nothing yet: from offset 0
    return covers + b"foreshock-snapshot:2:" + payload


async def plant(ns: Namespace, source: str, record: bytes) -> None:
    """Put the record on the detect-state changelog, where the worker will
    restore the state of ``source`` from."""
    s = ns.settings
    changelog = kafka.changelog_topic(s, kafka.DETECT_STATE)
    await kafka.ensure_topics(s, {changelog: s.partitions})
    partition = int(source.rpartition(":")[2])
    async with kafka.producer(s, acks="all") as producer:
        # Keys are JSON, as Faust writes a table's string keys.
        await producer.send_and_wait(
            changelog, record, key=orjson.dumps(source), partition=partition
        )


def test_a_snapshot_that_would_run_code_is_refused_and_the_worker_goes_on(
    namespace: Namespace, scenarios, topology, business, tmp_path
):
    start = scenarios[SCENARIO].start
    messages = simulate(scenarios, topology, business)
    last = start + EVENT_S
    namespace.publish(itertools.takewhile(lambda m: m.time <= last, messages))
    sources = asyncio.run(sources_with_data(namespace.settings))
    source = sorted(sources)[0]
    marker = tmp_path / "pickle-ran"
    asyncio.run(plant(namespace, source, crafted(marker)))

    topic, _, partition = source.rpartition(":")
    end = asyncio.run(kafka.end_offsets(namespace.settings, [topic]))
    messages_on_source = next(n for tp, n in end.items() if tp.partition == int(partition))
    port = _free_port()
    env = {"FORESHOCK_WEB_ENABLED": "true", "FORESHOCK_WEB_PORT": str(port)}
    with namespace.worker(env=env) as worker:

        def processed_all() -> bool:
            try:
                done = counters(port).get("foreshock_processed_messages_total", {})
            except OSError:
                return False  # the web server is not up yet
            return done.get((partition, topic), 0) >= messages_on_source

        namespace.wait_for("the partition to be processed", processed_all, TIMEOUT_S, [worker])
        namespace.wait_for(
            "its windows to be decided",
            lambda: Reports({source}, last).done(namespace.records(kafka.WINDOWS)),
            TIMEOUT_S,
            [worker],
        )
        refused = counters(port)["foreshock_refused_snapshots_total"][()]
        log = worker.text()

    assert not marker.exists(), "a byte read from Kafka was executed"
    assert refused >= 1  # once, or again if the partition came back before a new snapshot
    said = re.search(
        rf"detecting on {re.escape(source)}: the snapshot at offset -1 cannot be restored "
        r"\((.+)\); going on from offset 0 with models that learn afresh",
        log,
    )
    assert said, log[-3000:]
    print(f"\nrefused, counted once, nothing run: {said.group(1)}")
    # The other partitions had no snapshot: they start from scratch.
    for other in sources - {source}:
        assert f"detecting on {other}: from scratch" in log

"""A group offset committed past what a snapshot covers loses nothing.

A consumer can commit past the messages a snapshot covers (Faust takes a
jump in offsets for a gap left by compaction and counts it as acknowledged;
a partition's previous owner can commit after its next owner read the
snapshot). Whoever resumes the partition reads it from the first offset its
state lacks, not from the committed one, and never goes on without them.
"""

from __future__ import annotations

import asyncio
import itertools

from aiokafka import TopicPartition

from bench.kafka import Reports
from infra import kafka
from tests.kafka.conftest import Namespace, _free_port
from tests.kafka.test_crafted_snapshot import TIMEOUT_S, first_stretch, processed_since
from tests.kafka.test_deadletter import counters

SKIPPED = 20  # messages the group's committed offset jumps over


async def commit(ns: Namespace, source: str, offset: int) -> None:
    """Commit ``offset`` for the workers' group on one partition, as a
    consumer that skipped the messages before it would."""
    topic, _, partition = source.rpartition(":")
    tp = TopicPartition(topic, int(partition))
    async with kafka.consumer(ns.settings, group_id=ns.settings.app_id) as consumer:
        consumer.assign([tp])
        await consumer.commit({tp: offset})


def test_offsets_committed_past_the_snapshot_are_read_again(
    namespace: Namespace, scenarios, topology, business
):
    first, sources, firsts, messages, last = first_stretch(namespace, scenarios, topology, business)
    namespace.publish(itertools.takewhile(lambda m: m.time <= last, messages))
    # The partition with the most new messages has its committed offset moved
    # past some of them, which no snapshot covers.
    source = max(sources, key=lambda s: namespace.offsets(s)[1] - firsts[s])
    done, end = namespace.offsets(source)
    assert end - done > SKIPPED, (source, done, end)
    asyncio.run(commit(namespace, source, done + SKIPPED))
    assert namespace.offsets(source)[0] == done + SKIPPED

    port = _free_port()
    env = {"FORESHOCK_WEB_ENABLED": "true", "FORESHOCK_WEB_PORT": str(port)}
    with namespace.worker("second", env=env) as worker:
        # Counted from the snapshot's offset: the skipped messages too.
        namespace.wait_for(
            "every message after the snapshots to be processed",
            lambda: processed_since(namespace, port, firsts),
            TIMEOUT_S,
            [worker],
        )
        namespace.wait_for(
            "every window to be decided",
            lambda: Reports(sources, last).done(namespace.records(kafka.WINDOWS)),
            TIMEOUT_S,
            [worker],
        )
        rewinds = counters(port)["foreshock_rewinds_total"][()]
        log = worker.text()

    # Read from the snapshot on: never handed a message past the ones it lacks.
    assert "the consumer skipped" not in log, log[-3000:]
    assert rewinds == 0
    assert "never reached the detectors" not in first.text() + log

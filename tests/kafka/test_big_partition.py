"""A partition of 10,000 series: its learned state, about 9 MB, is over the
1 MB a Kafka record may be. It must land anyway (as records of at most
``CHUNK_BYTES``), and a worker that takes over after a SIGKILL must restore
it whole, without learning again, losing nothing."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal

from bench.memory import PER_POD, telemetry, world
from infra import kafka
from models.config import PipelineConfig
from models.detect_stage import DetectStage
from streams.checkpoint import CHUNK_BYTES, unpack
from tests.kafka.conftest import Namespace, read_all

SERIES = 10_000
FIRST = PipelineConfig().warm_up_windows + 5  # windows the first worker learns from
MORE = 10  # windows published for the second
TIMEOUT_S = 300


def topology_file(pods: int) -> str:
    width = len(str(pods))
    return f'[nodes.svc]\nfamily = "pods"\nentities = ["svc/pod-{{{"1".zfill(width)}..{pods}}}"]\n'


# About 80 s: two workers each take in 10,000 series over 45 windows, and the
# second recovers a 9 MB table from its changelog first.
def test_a_partition_of_10_000_series_snapshots_and_restores_after_sigkill(
    kafka_bootstrap, tmp_path
):
    pods = SERIES // PER_POD
    path = tmp_path / "fleet.toml"
    path.write_text(topology_file(pods))
    ns = Namespace(kafka_bootstrap, tmp_path)
    ns.settings = ns.settings.model_copy(update={"topology": path, "partitions": 1})
    topology = world(pods)
    assert len(topology.family_of) == pods
    source = kafka.partition_name(ns.topic("telemetry.pods"), 0)
    windows = telemetry(topology, range(FIRST + MORE + 1))
    first = ns.publish(itertools.chain.from_iterable(itertools.islice(windows, FIRST)))

    def covered() -> bool:  # a snapshot covers every message published so far
        done, end = ns.offsets(source)
        return done == end > 0

    worker = ns.worker("first")
    try:
        ns.wait_for("a snapshot covering every message", covered, TIMEOUT_S, [worker])
    finally:
        worker.stop(signal.SIGKILL)
    assert worker.proc.returncode == -signal.SIGKILL

    # The snapshot: over a Kafka record's limit in all, within it record by record.
    changelog = kafka.changelog_topic(ns.settings, kafka.DETECT_STATE)
    records = asyncio.run(read_all(ns.settings, changelog))
    sizes = [len(r.value) for r in records if r.value is not None]
    blob = ns.snapshots(kafka.DETECT_STATE)[source]
    offset, snapshot = unpack(blob)
    learned = DetectStage.restore(snapshot, topology, PipelineConfig())
    print(
        f"\nsnapshot of {len(learned.monitors):,} series: {len(blob):,} bytes, "
        f"{len(sizes)} records on the changelog, the largest {max(sizes):,} bytes"
    )
    assert len(learned.monitors) == SERIES
    assert len(blob) > 1_000_000
    assert max(sizes) <= CHUNK_BYTES
    assert offset + 1 == first.messages

    # The rest goes to a worker that restores it.
    rest = ns.publish(itertools.chain.from_iterable(windows))
    with ns.worker("second") as second:
        ns.wait_for("a snapshot covering every message", covered, TIMEOUT_S, [second])
    log = second.text()
    assert f"detecting on {source}: resumed from the snapshot at offset {offset}" in log, log[
        -3000:
    ]
    assert re.search(rf"{re.escape(source)}: {SERIES} series learned", log), log[-3000:]
    assert "cannot be restored" not in log
    # Nothing lost: the final snapshot has folded in every sample published.
    _, snapshot = unpack(ns.snapshots(kafka.DETECT_STATE)[source])
    final = DetectStage.restore(snapshot, topology, PipelineConfig())
    assert final.samples == first.samples + rest.samples
    assert not ns.records("foreshock.deadletter")

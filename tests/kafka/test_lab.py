"""The lab, whole: a real Redis leaks under real load, redis_exporter and a
real Prometheus (scraping every second, remote-writing to ``foreshock
ingest``) carry it to Kafka, and a worker warns of the exhaustion before
Redis is full, then flags the node when its writes fail.

Windows of 2 s (FORESHOCK_WINDOW_S), so that the models are warm within a
minute: the leak starts 10 s in and fills Redis about 100 s later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from infra.servers import Prometheus, Redis, RedisExporter
from producers.lab import TOPOLOGY, Lab
from tests.conftest import require
from tests.kafka.conftest import Namespace

pytestmark = pytest.mark.servers


def clock(t: float | None) -> str:
    return "never" if t is None else datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-4]


def test_the_lab_warns_before_redis_is_full_and_flags_it_when_writes_fail(
    namespace: Namespace,
) -> None:
    require(Redis, RedisExporter, Prometheus)
    settings = namespace.settings = namespace.settings.model_copy(
        update={"topology": TOPOLOGY, "window_s": 2.0}
    )
    worker = namespace.worker()
    events: list[tuple[float, dict[str, Any]]] = []  # (when published, the event)

    def read() -> list[tuple[float, dict[str, Any]]]:
        events[:] = [
            (r.timestamp / 1000, orjson.loads(r.value))
            for r in namespace.records("foreshock.anomalies")
        ]
        return events

    def warning() -> tuple[float, dict[str, Any]] | None:
        return next(
            (
                (t, e)
                for t, e in read()
                if e["type"] == "ExhaustionWarning" and e["metric"] == "memory_used_ratio"
            ),
            None,
        )

    with Lab(settings) as lab:
        warned_at, warned = namespace.wait_for("the exhaustion warning", warning, 240, [worker])
        namespace.wait_for("Redis to refuse writes", lambda: lab.load.first_oom_at, 240, [worker])
        oom_at = lab.load.first_oom_at
        assert oom_at is not None

        def flagged() -> dict[str, Any] | None:
            return next(
                (
                    e
                    for t, e in read()
                    if e["type"] == "Anomaly" and e["entity"] == "redis/node-01" and t >= oom_at
                ),
                None,
            )

        anomaly = namespace.wait_for("an anomaly on the Redis node", flagged, 120, [worker])
        full_at = lab.full_at
        used, maxmemory = lab.used
    worker.stop()
    print(f"\nwarning published {clock(warned_at)}: {warned}")
    print(f"Redis reached maxmemory ({maxmemory:,} bytes, INFO) at {clock(full_at)};")
    print(f"first write refused with OOM at {clock(oom_at)}; used {used:,} at the end")
    print(f"anomaly: {anomaly}")
    assert full_at is not None
    assert warned_at < min(full_at, oom_at), "the warning came before Redis was full"
    assert warned["entity"] == "redis/node-01" and warned["eta"] > warned["at"]

"""``foreshock ingest`` against the real broker: remote_write bodies as
Prometheus sends them, OTLP from OpenTelemetry's own Python exporter, and
hostile bodies, which are refused with a clear 4xx while the receiver stays up.

One receiver serves the whole module, publishing on topics of its own.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cramjam
import orjson
import pytest

from bench.kafka import worker_env
from infra import kafka
from infra.ingest.remote_write import body as remote_write_body
from infra.ingest.translate import STALE_MARKER
from infra.settings import Settings
from producers.receiver import Background, Limits, Receiver
from tests.kafka.conftest import Namespace

LIMITS = Limits(series=50_000, body_bytes=4 << 20)


@dataclass
class Running:
    url: str
    receiver: Receiver
    namespace: Namespace

    def telemetry(self, family: str) -> list[dict[str, Any]]:
        return self.namespace.read(f"telemetry.{family}")

    def dropped(self, reason: str) -> float:
        value = self.receiver.registry.get_sample_value(
            "foreshock_ingest_dropped_total", {"protocol": "remote_write", "reason": reason}
        )
        return value or 0.0


@pytest.fixture(scope="module")
def running(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    namespace = Namespace(kafka_bootstrap, tmp_path_factory.mktemp("ingest"))
    settings: Settings = namespace.settings
    background = Background(settings, settings.load_mapping(), settings.load_topology(), LIMITS)
    yield Running(background.url, background.receiver, namespace)
    background.close()


def post(url: str, body: bytes, content_type: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def write_request(series: list[tuple[dict[str, str], list[tuple[float, float]]]]) -> bytes:
    return remote_write_body(series)


def remote_write(running: Running, body: bytes, content_type: str = "application/x-protobuf"):
    return post(
        f"{running.url}/api/v1/write",
        body,
        content_type,
        **{"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"},
    )


def test_redis_exporter_series_arrive_as_redis_telemetry(running: Running) -> None:
    now = math.floor(time.time())
    node = {"instance": "node-03", "job": "redis"}
    scrapes = [(now - 3.0, 1000.0), (now - 2.0, 1600.0), (now - 1.0, 200.0)]  # a reset
    first = write_request(
        [
            ({"__name__": "redis_memory_max_bytes", **node}, [(now - 3.0, 32e6)]),
            ({"__name__": "redis_commands_processed_total", **node}, scrapes[:2]),
        ]
    )
    # The numerator in a later request than its denominator, as parallel shards send them.
    second = write_request(
        [
            ({"__name__": "redis_memory_used_bytes", **node}, [(now - 1.0, 24e6)]),
            ({"__name__": "redis_commands_processed_total", **node}, scrapes[2:]),
            ({"__name__": "go_goroutines", **node}, [(now - 1.0, 12.0)]),
        ]
    )
    assert remote_write(running, first)[0] == 204
    assert remote_write(running, second)[0] == 204
    redis = [m for m in running.telemetry("redis") if m["entity"] == "redis/node-03"]
    columns: dict[str, list[float]] = {}
    for message in redis:
        for metric, values in message["metrics"].items():
            columns.setdefault(metric, []).extend(values)
    assert columns == {"ops_per_s": [600.0, 200.0], "memory_used_ratio": [0.75]}
    assert running.dropped("unmapped") >= 1  # go_goroutines


def test_the_opentelemetry_sdk_exporter_delivers_gauges_and_counters(running: Running) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
    from opentelemetry.sdk.resources import Resource

    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": "music-svc", "server.address": "node-05"}),
        metric_readers=[reader],
    )
    meter = provider.get_meter("foreshock-test")
    duration = meter.create_histogram(
        "http.server.request.duration",
        unit="s",
        explicit_bucket_boundaries_advisory=[0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
    )
    used = meter.create_observable_gauge(
        "redis.memory.used", callbacks=[lambda _: [Observation(8e6)]]
    )
    limit = meter.create_observable_gauge(
        "redis.maxmemory", callbacks=[lambda _: [Observation(32e6)]]
    )
    assert used and limit
    exporter = OTLPMetricExporter(endpoint=f"{running.url}/v1/metrics", timeout=30)

    def export() -> float:
        data = reader.get_metrics_data()
        assert data is not None
        assert exporter.export(data) is MetricExportResult.SUCCESS
        return time.monotonic()

    duration.record(0.05, {"http.response.status_code": 200})
    duration.record(0.2, {"http.response.status_code": 503})
    first = export()  # a counter's first value tells only where it starts
    time.sleep(1.0)
    for _ in range(90):
        duration.record(0.05, {"http.response.status_code": 200})
    for _ in range(10):
        duration.record(0.2, {"http.response.status_code": 503})
    between = export() - first
    exporter.shutdown()

    pods = [m for m in running.telemetry("pods") if m["entity"] == "music-svc"]
    latest = {metric: values[-1] for m in pods for metric, values in m["metrics"].items()}
    # 100 requests between exports `between` seconds apart, 10 of them failed.
    assert latest["request_rate"] == pytest.approx(100 / between, rel=0.2)
    assert latest["error_rate"] == pytest.approx(0.1)
    # The 99th of 100 falls in the bucket (0.1, 0.25] that holds the 10 slow ones.
    assert latest["p99_latency_ms"] == pytest.approx(235.0)
    redis = [m for m in running.telemetry("redis") if m["entity"] == "redis/node-05"]
    assert redis and redis[-1]["metrics"]["memory_used_ratio"][-1] == pytest.approx(0.25)


def test_otlp_json_is_taken_and_answered_in_json(running: Running) -> None:
    now_ns = time.time_ns()
    body = {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [{"key": "server.address", "value": {"stringValue": "node-06"}}]
                },
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "redis.clients.connected",
                                "sum": {
                                    "isMonotonic": False,
                                    "aggregationTemporality": 2,
                                    "dataPoints": [{"asInt": "42", "timeUnixNano": str(now_ns)}],
                                },
                            }
                        ]
                    }
                ],
            }
        ]
    }
    status, answer = post(f"{running.url}/v1/metrics", orjson.dumps(body), "application/json")
    assert (status, orjson.loads(answer)) == (200, {})
    redis = [m for m in running.telemetry("redis") if m["entity"] == "redis/node-06"]
    assert [m["metrics"] for m in redis] == [{"connected_clients": [42.0]}]


def _series(n: int, label_chars: int = 8) -> bytes:
    now = time.time()
    return write_request(
        [
            (
                {
                    "__name__": "redis_connected_clients",
                    "instance": f"x{i:06d}" + "y" * label_chars,
                },
                [(now, 1.0)],
            )
            for i in range(n)
        ]
    )


HOSTILE = {
    "not snappy": (b"this is not snappy at all", "application/x-protobuf", 400, "not_snappy"),
    "truncated protobuf": (
        bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\x03\x0a")),
        "application/x-protobuf",
        400,
        "not_protobuf",
    ),
    "wrong content type": (b"{}", "application/json", 415, "wrong_content_type"),
    "huge": (bytes(8 << 20), "application/x-protobuf", 413, "too_large"),
    "a label of 1 MB": (
        _series(1, label_chars=1 << 20),
        "application/x-protobuf",
        400,
        "label_too_long",
    ),
    "100k series": (_series(100_000), "application/x-protobuf", 413, "too_many_series"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_body_is_refused_clearly_and_counted(running: Running, case: str) -> None:
    body, content_type, status, reason = HOSTILE[case]
    before = running.dropped(reason)
    answer = remote_write(running, body, content_type)
    assert answer[0] == status, answer
    assert answer[1].strip(), "a refusal says why"
    assert running.dropped(reason) == before + 1
    good = write_request(
        [({"__name__": "redis_connected_clients", "instance": "node-07"}, [(time.time(), 5.0)])]
    )
    assert remote_write(running, good)[0] == 204  # still up


def test_nan_and_inf_samples_are_refused_and_stale_markers_are_not(running: Running) -> None:
    now = time.time()
    node = {"__name__": "redis_connected_clients", "instance": "node-08"}
    bad = write_request([(node, [(now, math.nan), (now + 0.5, math.inf)])])
    status, why = remote_write(running, bad)
    assert (status, why) == (400, b"every sample refused: non_finite 2\n")
    # Prometheus's marker of a series that ended is routine: taken, and dropped.
    stale = write_request([(node, [(now + 1.0, STALE_MARKER)])])
    assert remote_write(running, stale)[0] == 204
    assert running.dropped("stale_marker") >= 1


def test_the_receiver_counts_on_its_metrics_page(running: Running) -> None:
    with urllib.request.urlopen(f"{running.url}/metrics", timeout=10) as page:
        text = page.read().decode()
    assert 'foreshock_ingest_requests_total{code="204",protocol="remote_write"}' in text
    assert "foreshock_ingest_samples_total" in text


def test_a_bad_mapping_stops_ingest_with_one_line(tmp_path: Path, running: Running) -> None:
    bad = tmp_path / "mapping.toml"
    bad.write_text('[[map]]\nto = "redis.memory_used_ratio"\nentity = "redis/{instance}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "foreshock", "ingest"],
        env=worker_env(running.namespace.settings) | {"FORESHOCK_MAPPING": str(bad)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: FORESHOCK_MAPPING: {bad}: map[0].from: missing, or not a string"
    ]


def test_a_worker_reads_otlp_the_collector_writes_to_kafka(namespace: Namespace) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    settings = namespace.settings = namespace.settings.model_copy(
        update={"otlp_topic": namespace.topic("otlp_metrics")}
    )
    now_ns = time.time_ns()

    def request(used: float) -> bytes:
        body = ExportMetricsServiceRequest()
        rm = body.resource_metrics.add()
        rm.resource.attributes.add(key="server.address").value.string_value = "node-09"
        metrics = rm.scope_metrics.add().metrics
        for name, value in (("redis.memory.used", used), ("redis.maxmemory", 1e6)):
            point = metrics.add(name=name).gauge.data_points.add()
            point.time_unix_nano, point.as_double = now_ns, value
        return body.SerializeToString()

    async def write(values: list[bytes]) -> None:
        await kafka.ensure_topics(settings, {settings.otlp_topic: 1})
        async with kafka.producer(settings) as producer:
            for value in values:
                await producer.send_and_wait(settings.otlp_topic, value)

    worker = namespace.worker()
    asyncio.run(write([request(4e5), b"not otlp at all"]))

    def translated() -> list[dict[str, Any]]:
        redis = [m for m in namespace.read("telemetry.redis") if m["entity"] == "redis/node-09"]
        return redis

    found = namespace.wait_for("the OTLP record as telemetry", translated, 120, [worker])
    letters = namespace.wait_for(
        "the dead letter", lambda: namespace.records("foreshock.deadletter"), 60, [worker]
    )
    worker.stop()
    assert [m["metrics"] for m in found] == [{"memory_used_ratio": [0.4]}]
    assert dict(letters[0].headers)["reason"] == b"not_protobuf"

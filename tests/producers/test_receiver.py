"""The receiver's bounds, with Kafka slow: it answers 503 with Retry-After
rather than hold bodies without end (the broker tests cover the rest)."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from infra.ingest import Translator
from infra.ingest.mapping import from_dict
from infra.ingest.remote_write import body
from models.schema import Telemetry
from producers.receiver import Limits, Receiver

HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
BODY = body([({"__name__": "redis_connected_clients", "instance": "node-01"}, [(1.7e9, 3.0)])])
RULES = from_dict(
    {"map": [{"to": "redis.connected_clients", "entity": "redis/{instance}",
              "from": "redis_connected_clients"}]}
)  # fmt: skip


async def test_a_slow_kafka_gets_503_and_no_body_waits_beyond_the_bound() -> None:
    never = asyncio.Event()

    async def stuck(messages: list[Telemetry]) -> None:  # Kafka that never acknowledges
        await never.wait()

    limits = Limits(inflight=1, wait_s=0.2, kafka_s=0.5)
    receiver = Receiver(Translator(RULES), stuck, limits)
    async with TestClient(TestServer(receiver.app())) as client:
        first, second = await asyncio.gather(
            client.post("/api/v1/write", data=BODY, headers=HEADERS),
            client.post("/api/v1/write", data=BODY, headers=HEADERS),
        )
        answers = sorted([(first.status, await first.text()), (second.status, await second.text())])
    assert [status for status, _ in answers] == [503, 503]
    assert {text.split(":")[0] for _, text in answers} == {
        "Kafka did not take it",
        "too many requests waiting on Kafka\n",
    }
    assert first.headers["Retry-After"] == "1"
    busy = receiver.registry.get_sample_value(
        "foreshock_ingest_dropped_total", {"protocol": "remote_write", "reason": "busy"}
    )
    assert busy == 1.0

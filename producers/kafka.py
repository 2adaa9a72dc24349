"""Publishes telemetry to Kafka: one topic per family, keyed by entity, so that
every sample of a series lands on the same partition, in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest

from models.schema import FAMILIES, Telemetry, encode
from producers.replay import schedule

log = logging.getLogger(__name__)

TELEMETRY_TOPICS = {family: f"telemetry.{family}" for family in FAMILIES}
SETTLE_EVERY = 5000  # messages between checks that every send so far was acknowledged


@dataclass
class Published:
    messages: int = 0
    samples: int = 0
    bytes: int = 0
    wall_s: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0


async def ensure_topics(client: dict[str, Any], topics: dict[str, int]) -> None:
    """Create the topics that do not exist yet, with the given partition counts.

    Left to the broker, a topic would be created on first use with its default
    partition count, which need not match the tables that shard with it.
    """
    admin = AIOKafkaAdminClient(**client)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, n, 1) for t, n in topics.items() if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                await admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


async def publish(
    messages: Iterable[Telemetry],
    client: dict[str, Any],
    topics: dict[str, str],
    speed: float | None = None,
    on_send: Callable[[Telemetry], None] | None = None,
) -> Published:
    """Send every message to its family's topic, paced at ``speed``.

    Sends are pipelined; every few thousand messages the acknowledgements are
    awaited, so that a failure stops the run with its cause instead of being
    dropped. Idempotence keeps retries from writing a message twice.
    """
    producer = AIOKafkaProducer(
        **client,
        compression_type="lz4",
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks="all",
        enable_idempotence=True,
    )
    stats = Published()
    await producer.start()
    began = time.monotonic()
    inflight: list[asyncio.Future[Any]] = []
    try:
        for due, tel in schedule(messages, speed):
            wait = began + due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if on_send is not None:
                on_send(tel)
            value = encode(tel)
            key = tel.entity.encode()
            inflight.append(await producer.send(topics[tel.family], value, key=key))
            stats.messages += 1
            stats.samples += tel.samples
            stats.bytes += len(value)
            if len(inflight) >= SETTLE_EVERY:
                await asyncio.gather(*inflight)
                inflight.clear()
        await producer.flush()
        await asyncio.gather(*inflight)
    finally:
        await producer.stop()
    stats.wall_s = time.monotonic() - began
    return stats


def partition_name(topic: str, partition: int) -> str:
    """How logs and window reports name one partition: ``topic:partition``."""
    return f"{topic}:{partition}"


async def partitions_with_data(client: dict[str, Any], topics: Iterable[str]) -> list[str]:
    """The names of the partitions of these topics that hold at least one message."""
    names = list(topics)
    admin = AIOKafkaAdminClient(**client)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    tps = [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in t["partitions"]
    ]
    if not tps:
        return []
    consumer = AIOKafkaConsumer(**client, enable_auto_commit=False)
    await consumer.start()
    try:
        first = await consumer.beginning_offsets(tps)
        last = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return sorted(partition_name(tp.topic, tp.partition) for tp in tps if last[tp] > first[tp])


class BrokerAccessError(Exception):
    """The broker cannot be used with these settings; the message names the
    cause and the setting to check, and never a secret."""


async def check_broker(client: dict[str, Any], timeout_s: float = 10.0) -> None:
    """Connect to a bootstrap broker, authenticate and ask for metadata, or
    raise ``BrokerAccessError`` within about ``timeout_s`` per address.

    Kafka clients retry a refused login like a broker that is down, for
    minutes and with a generic error; this asks once and says which it is.
    """
    sasl = str(client.get("security_protocol", "")).startswith("SASL")
    user = client.get("sasl_plain_username")
    if sasl and (not user or client.get("sasl_plain_password") is None):
        raise BrokerAccessError(
            "SASL needs a username and a password: "
            "set FORESHOCK_KAFKA_SASL_USERNAME and FORESHOCK_KAFKA_SASL_PASSWORD"
        )
    options = {k: v for k, v in client.items() if k != "bootstrap_servers"}
    causes: list[str] = []
    for address in str(client["bootstrap_servers"]).split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host.strip("[]"), int(port), request_timeout_ms=int(timeout_s * 1000), **options
                ),
                timeout_s,
            )
            try:
                await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
            finally:
                conn.close()
        except (SaslAuthenticationFailed, AuthenticationFailedError):
            raise BrokerAccessError(
                f"authentication failed at {address.strip()} "
                f"({client.get('sasl_mechanism')} as user {user!r}): "
                "check FORESHOCK_KAFKA_SASL_USERNAME and FORESHOCK_KAFKA_SASL_PASSWORD"
            ) from None
        except UnsupportedSaslMechanismError:
            raise BrokerAccessError(
                f"the broker at {address.strip()} does not offer "
                f"{client.get('sasl_mechanism')}: check FORESHOCK_KAFKA_SASL_MECHANISM"
            ) from None
        except (TimeoutError, OSError, ValueError, KafkaError) as exc:
            causes.append(f"{address.strip()}: {str(exc) or type(exc).__name__}")
            continue
        return
    raise BrokerAccessError(
        f"cannot use the Kafka broker ({'; '.join(causes)}): check FORESHOCK_KAFKA_BOOTSTRAP "
        f"and that FORESHOCK_KAFKA_SECURITY_PROTOCOL ({client.get('security_protocol')}) "
        "is what its listener speaks"
    )

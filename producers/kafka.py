"""Publishes telemetry to Kafka: one topic per family, keyed by entity, so that
every sample of a series lands on the same partition, in order. Change events
go to ``telemetry.changes``, keyed by component."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from infra import kafka
from infra.settings import Settings
from models.changes import ChangeEvent
from models.schema import Telemetry, encode
from producers.replay import schedule

SETTLE_EVERY = 5000  # messages between checks that every send so far was acknowledged


@dataclass
class Published:
    messages: int = 0  # of telemetry
    changes: int = 0  # change events
    samples: int = 0
    bytes: int = 0
    wall_s: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0


async def publish(
    settings: Settings,
    messages: Iterable[Telemetry | ChangeEvent],
    speed: float | None = None,
    on_send: Callable[[Telemetry], None] | None = None,
) -> Published:
    """Send every message to its family's topic, and every change event to
    the changes topic, paced at ``speed``; the topics are created first if
    missing. ``on_send`` is shown each telemetry message as it is sent.

    Sends are pipelined; every few thousand messages the acknowledgements are
    awaited, so that a failure stops the run with its cause instead of being
    dropped. Idempotence keeps retries from writing a message twice.
    """
    topics = kafka.telemetry_topics(settings)
    changes = settings.topic(kafka.CHANGES)
    await kafka.ensure_topics(
        settings, dict.fromkeys([*topics.values(), changes], settings.partitions)
    )
    stats = Published()
    inflight: list[asyncio.Future[Any]] = []
    async with kafka.producer(
        settings,
        compression_type="lz4",
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks="all",
        enable_idempotence=True,
    ) as producer:
        began = time.monotonic()
        for due, tel in schedule(messages, speed):
            wait = began + due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if isinstance(tel, ChangeEvent):
                change = orjson.dumps(tel.to_wire())
                inflight.append(await producer.send(changes, change, key=tel.component.encode()))
                stats.changes += 1
                stats.bytes += len(change)
                continue
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
    stats.wall_s = time.monotonic() - began
    return stats

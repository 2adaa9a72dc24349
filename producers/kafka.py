"""Publishes telemetry to Kafka: one topic per family, keyed by entity, so that
every sample of a series lands on the same partition, in order. Change events
go to ``telemetry.changes``, keyed by component."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

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


class Publisher:
    """An open producer onto the telemetry and change topics, created first
    if missing. Idempotence keeps retries from writing a message twice.

    ``send`` returns once a message is queued, with a future of its
    acknowledgement; ``deliver`` sends a batch and waits for every
    acknowledgement, so that a failure is known to the caller.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = kafka.telemetry_topics(settings)
        self.changes = settings.topic(kafka.CHANGES)
        self._stack = contextlib.AsyncExitStack()
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Publisher:
        await kafka.ensure_topics(
            self.settings,
            dict.fromkeys([*self.topics.values(), self.changes], self.settings.partitions),
        )
        self._producer = await self._stack.enter_async_context(
            kafka.producer(
                self.settings,
                compression_type="lz4",
                linger_ms=20,
                max_batch_size=512 * 1024,
                acks="all",
                enable_idempotence=True,
            )
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def send(self, message: Telemetry | ChangeEvent) -> tuple[asyncio.Future[Any], int]:
        """Queue one message; its acknowledgement to come, and its size in bytes."""
        assert self._producer is not None, "a Publisher is used inside `async with`"
        if isinstance(message, ChangeEvent):
            value = orjson.dumps(message.to_wire())
            key, topic = message.component.encode(), self.changes
        else:
            value, key, topic = (
                encode(message),
                message.entity.encode(),
                self.topics[message.family],
            )
        return await self._producer.send(topic, value, key=key), len(value)

    async def deliver(self, messages: Iterable[Telemetry | ChangeEvent]) -> None:
        """Send every message and wait until the broker has every one."""
        acks = [(await self.send(m))[0] for m in messages]
        await asyncio.gather(*acks)

    async def flush(self) -> None:
        assert self._producer is not None
        await self._producer.flush()


async def publish(
    settings: Settings,
    messages: Iterable[Telemetry | ChangeEvent],
    speed: float | None = None,
    on_send: Callable[[Telemetry], None] | None = None,
) -> Published:
    """Send every message to its family's topic, and every change event to
    the changes topic, paced at ``speed``. ``on_send`` is shown each
    telemetry message as it is sent.

    Sends are pipelined; every few thousand messages the acknowledgements are
    awaited, so that a failure stops the run with its cause instead of being
    dropped.
    """
    stats = Published()
    inflight: list[asyncio.Future[Any]] = []
    async with Publisher(settings) as publisher:
        began = time.monotonic()
        for due, tel in schedule(messages, speed):
            wait = began + due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if isinstance(tel, Telemetry) and on_send is not None:
                on_send(tel)
            ack, size = await publisher.send(tel)
            inflight.append(ack)
            stats.bytes += size
            if isinstance(tel, ChangeEvent):
                stats.changes += 1
                continue
            stats.messages += 1
            stats.samples += tel.samples
            if len(inflight) >= SETTLE_EVERY:
                await asyncio.gather(*inflight)
                inflight.clear()
        await publisher.flush()
        await asyncio.gather(*inflight)
    stats.wall_s = time.monotonic() - began
    return stats

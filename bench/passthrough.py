"""A Faust agent that reads the telemetry topics and does nothing else: the
ceiling any Faust worker can reach on this machine (``foreshock bench kafka``).

Run as ``python -m bench.passthrough worker``; with the same settings as a
Foreshock worker it reads the same topics, in a consumer group of its own.
"""

from __future__ import annotations

import logging
import time

import faust

from foreshock.settings import Settings
from producers.kafka import TELEMETRY_TOPICS

log = logging.getLogger(__name__)
settings = Settings()

app = faust.App(
    f"{settings.app_id}-passthrough",
    broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
    store="memory://",
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
)
telemetry = app.topic(
    *(settings.topic(t) for t in TELEMETRY_TOPICS.values()),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
seen = {"messages": 0, "first": 0.0, "last": 0.0}


@app.agent(telemetry)
async def passthrough(stream: faust.StreamT) -> None:
    async for _ in stream.events():
        now = time.monotonic()
        if not seen["messages"]:
            seen["first"] = now
        seen["messages"] += 1
        seen["last"] = now


@app.timer(interval=1.0)
async def report() -> None:
    if seen["messages"]:
        span = seen["last"] - seen["first"]
        log.warning("passthrough: %d messages in %.3f s", seen["messages"], span)


if __name__ == "__main__":
    app.main()

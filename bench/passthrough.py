"""A Faust agent that reads the telemetry topics and does nothing else: the
ceiling any Faust worker can reach on this machine (``foreshock bench kafka``).

Run as ``python -m bench.passthrough worker``; with the same settings as a
Foreshock worker it reads the same topics, in a consumer group of its own.
"""

from __future__ import annotations

import logging
import time

import faust

from infra import kafka
from infra.settings import Settings

log = logging.getLogger(__name__)
settings = Settings()

# The same cluster and credentials as a worker; a consumer group of its own.
app = kafka.faust_app(settings, f"{settings.app_id}-passthrough", web_enabled=False)
telemetry = kafka.raw_topic(app, settings, *kafka.TELEMETRY.values())
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

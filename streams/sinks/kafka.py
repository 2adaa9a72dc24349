"""Sends the Faust app's findings and incident changes to their Kafka topics."""

from __future__ import annotations

import asyncio

import faust
import orjson

from models.incident import IncidentEvent
from models.pipeline import Event
from streams.sinks.base import Sink
from streams.sinks.wire import event_to_dict


class KafkaSink(Sink):
    """Incident changes go to ``incidents``, keyed by incident id; every other
    event to ``anomalies``, keyed by entity and metric; each as JSON.

    ``emit`` queues the event on the app's producer, which sends what it is
    given in order, so that events keep their order on each partition;
    ``drain`` waits until the broker has acknowledged every event emitted
    before it was called.
    """

    def __init__(
        self, anomalies: faust.TopicT | None = None, incidents: faust.TopicT | None = None
    ) -> None:
        self.anomalies = anomalies
        self.incidents = incidents
        self._pending: list[asyncio.Future[object]] = []

    def emit(self, event: Event) -> None:
        body = event_to_dict(event)
        if isinstance(event, IncidentEvent):
            topic, key = self.incidents, str(body["id"])
        else:
            topic, key = self.anomalies, f"{body['entity']}:{body.get('metric', '')}"
        if topic is None:
            raise ValueError(f"this sink has no topic for a {type(event).__name__}")
        self._pending.append(topic.send_soon(key=key.encode(), value=orjson.dumps(body)))

    async def drain(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)

"""Keeps every event in a list: what a replay reads back."""

from __future__ import annotations

from models.pipeline import Event
from streams.sinks.base import Sink


class MemorySink(Sink):
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

"""Where the engines send what the models decide."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from models.incident import IncidentEvent
from models.pipeline import Event


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready form of any event, tagged with its type."""
    if isinstance(event, IncidentEvent):
        return {
            "type": "incident",
            "kind": event.kind,
            "at": event.at,
            "text": event.text,
            **event.incident,
        }
    body = {s: getattr(event, s) for s in event.__slots__}
    return {"type": type(event).__name__, **body}


class JsonlSink:
    """Appends incident events (or every event) to a JSON Lines file."""

    def __init__(self, path: Path, everything: bool = False) -> None:
        self.path = path
        self.everything = everything
        self._file: IO[bytes] = path.open("ab")

    def emit(self, event: Event) -> None:
        if self.everything or isinstance(event, IncidentEvent):
            self._file.write(orjson.dumps(event_to_dict(event)) + b"\n")

    def close(self) -> None:
        self._file.close()


class MemorySink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

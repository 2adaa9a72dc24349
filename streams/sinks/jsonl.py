"""Appends incident events (or every event) to a JSON Lines file."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import orjson

from models.incident import IncidentEvent
from models.pipeline import Event
from streams.sinks.base import Sink
from streams.sinks.wire import event_to_dict


class JsonlSink(Sink):
    def __init__(self, path: Path, everything: bool = False) -> None:
        self.path = path
        self.everything = everything
        self._file: IO[bytes] = path.open("ab")

    def emit(self, event: Event) -> None:
        if self.everything or isinstance(event, IncidentEvent):
            self._file.write(orjson.dumps(event_to_dict(event)) + b"\n")

    def close(self) -> None:
        self._file.close()

"""Pacing: replay event time as fast as possible, or at ×1, ×10 of real time
(telemetry and change events alike)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from models.changes import ChangeEvent
from models.schema import Telemetry

M = TypeVar("M", Telemetry, ChangeEvent, Telemetry | ChangeEvent)


def schedule(messages: Iterable[M], speed: float | None) -> Iterator[tuple[float, M]]:
    """Pair each message with when it is due, in wall seconds after the first.

    ``speed=None`` is as fast as possible: everything is due at once. Event
    time is never changed, only the wall-clock moment a message is handed on.
    """
    origin: float | None = None
    for message in messages:
        if speed is None:
            yield 0.0, message
            continue
        if origin is None:
            origin = message.time
        yield (message.time - origin) / speed, message


def paced(
    messages: Iterable[M],
    speed: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[M]:
    """Yield each message no earlier than its event time allows at ``speed``."""
    began = clock()
    for due, message in schedule(messages, speed):
        wait = began + due - clock()
        if wait > 0:
            sleep(wait)
        yield message

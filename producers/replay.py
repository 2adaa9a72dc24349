"""Pacing: replay event time as fast as possible, or at ×1, ×10 of real time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from models.schema import Telemetry


def paced(
    messages: Iterable[Telemetry],
    speed: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Telemetry]:
    """Yield each message no earlier than its event time allows at ``speed``.

    ``speed=None`` is as fast as possible. Event time is never changed, only
    the wall-clock moment a message is handed on.
    """
    if speed is None:
        yield from messages
        return
    origin: tuple[float, float] | None = None
    for message in messages:
        if origin is None:
            origin = (message.time, clock())
        due = origin[1] + (message.time - origin[0]) / speed
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        yield message

"""The embedded engine: the models in-process, no broker.

It validates every message exactly as a worker would, routes rejections to a
dead-letter sink with their reason, and hands every decision to the sinks.
Change events (typed ``ChangeEvent``s among the telemetry) are validated as
the worker validates those of ``telemetry.changes`` and reach correlation;
raw bytes are always telemetry.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from models.changes import ChangeEvent
from models.pipeline import DetectionPipeline, Event
from models.schema import Rejection, Telemetry, decode, validate
from streams.deadletters import RejectionLog
from streams.sinks import Sink

log = logging.getLogger(__name__)

DeadLetter = Callable[[object, Rejection], None]


@dataclass
class RunStats:
    messages: int = 0
    changes: int = 0  # change events recorded
    samples: int = 0
    series: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    late_points: int = 0
    wall_s: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0


class EmbeddedEngine:
    def __init__(
        self,
        pipeline: DetectionPipeline,
        sinks: Iterable[Sink] = (),
        deadletter: DeadLetter | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.sinks = list(sinks)
        self.deadletter = deadletter
        self.stats = RunStats()
        self.rejections = RejectionLog(log.warning)

    def feed(self, message: Telemetry | ChangeEvent | bytes) -> None:
        """Validate one message (typed, or raw bytes of telemetry from the
        wire) and process it."""
        self.stats.messages += 1
        known = self.pipeline.topology.knows
        if isinstance(message, ChangeEvent):
            self._change(message)
            return
        if isinstance(message, bytes | bytearray):
            checked = decode(bytes(message), known)
        else:
            checked = validate(message.to_wire(), known)
        outcome = checked if isinstance(checked, Rejection) else self.pipeline.process(checked)
        if isinstance(outcome, Rejection):
            self._reject(message, outcome)
            return
        self._emit(outcome)

    def _reject(self, message: object, rejection: Rejection) -> None:
        self.stats.rejected[rejection.reason] += 1
        self.rejections.note(f"message {self.stats.messages}", rejection)
        if self.deadletter is not None:
            self.deadletter(message, rejection)

    def _change(self, message: ChangeEvent) -> None:
        change = ChangeEvent.validate(message.to_wire(), self.pipeline.topology.names)
        if isinstance(change, Rejection):
            self._reject(message, change)
            return
        self.pipeline.record_change(change)
        self.stats.changes += 1

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            for sink in self.sinks:
                sink.emit(event)

    def run(self, messages: Iterable[Telemetry | ChangeEvent | bytes]) -> RunStats:
        began = time.perf_counter()
        for message in messages:
            self.feed(message)
        self._emit(self.pipeline.finish())
        self.rejections.flush()
        p = self.pipeline
        self.stats.samples = p.samples
        self.stats.series = p.series
        self.stats.late_points = p.late_points
        self.stats.wall_s = time.perf_counter() - began
        return self.stats

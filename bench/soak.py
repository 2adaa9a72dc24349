"""``foreshock bench soak``: one worker under a steady rate for a long time.

A scenario's synthetic telemetry is published at a steady pace (samples per
second of wall time) into isolated topics on a local broker while one worker
detects on it. Every minute a row is taken:

- consumer lag in messages: the end offsets of the telemetry partitions minus
  the offsets the worker's group has committed (a worker commits a message
  once a snapshot of its partition covers it, so this lag includes up to one
  snapshot interval of messages by design);
- consumer lag in seconds: for every window the worker decided in that
  minute, from when the telemetry message that closed it was sent to when the
  worker's report reached the broker (as ``foreshock bench kafka`` measures);
- the worker's resident memory (RSS).

The run ends with the trend of each: least-squares slope per minute, and the
first and last rows. Publishing is bounded by the run's length and by the
count of samples that length allows at the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import math
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

from bench.kafka import WorkerProcess, worker_env
from infra import kafka
from infra.kafka import group_offsets
from infra.settings import Settings
from models.changes import ChangeEvent
from models.schema import Telemetry
from producers.kafka import publish
from producers.scenario import Scenario
from producers.sources.simulator import Simulator

PROBE_S = 600.0  # event seconds sampled to find the scenario's samples per event second


@dataclass
class Row:
    """One minute of the soak."""

    minute: int
    wall_s: float  # since publishing began
    samples: int  # published in this minute
    samples_per_s: float
    lag_messages: int  # end offsets minus committed offsets, all telemetry partitions
    lag_p50_s: float | None  # windows decided in this minute, send to report
    lag_max_s: float | None
    windows: int
    rss_mb: float


def loopback_only(bootstrap: str) -> None:
    """Refuse to flood anything but a broker on this machine.

    >>> loopback_only("127.0.0.1:9092,localhost:9093")
    >>> loopback_only("10.1.2.3:9092")
    Traceback (most recent call last):
    ...
    ValueError: the soak talks only to a local broker, not to 10.1.2.3:9092
    """
    for server in bootstrap.split(","):
        host = server.rsplit(":", 1)[0].strip("[]")
        for info in socket.getaddrinfo(host, None):
            if not ipaddress.ip_address(info[4][0]).is_loopback:
                raise ValueError(f"the soak talks only to a local broker, not to {server}")


def samples_per_event_s(scenario: Scenario, sim_args: tuple[Any, ...]) -> float:
    """Samples the scenario produces per second of event time, at its start."""
    until = scenario.start + PROBE_S
    head = itertools.takewhile(lambda m: m.time <= until, Simulator(scenario, *sim_args).messages())
    return sum(m.samples for m in head if isinstance(m, Telemetry)) / PROBE_S


def _bounded(
    messages: Iterator[Telemetry | ChangeEvent], last: float, budget: int
) -> Iterator[Telemetry | ChangeEvent]:
    total = 0
    for m in messages:
        total += m.samples if isinstance(m, Telemetry) else 0
        if m.time > last or total > budget:
            return
        yield m


def trend(minutes: list[float], values: list[float | None]) -> dict[str, float | None]:
    """Slope per minute (least squares over the rows), first and last value.

    >>> trend([1, 2, 3, 4], [100.0, 101.0, None, 103.0])
    {'slope_per_min': 1.0, 'first': 100.0, 'last': 103.0}
    >>> trend([1], [None])
    {'slope_per_min': None, 'first': None, 'last': None}
    """
    points = [(m, v) for m, v in zip(minutes, values, strict=True) if v is not None]
    if not points:
        return {"slope_per_min": None, "first": None, "last": None}
    slope = None
    if len(points) >= 2:
        x, y = np.array(points, dtype=float).T
        slope = round(float(np.polyfit(x, y, 1)[0]), 3)
    return {"slope_per_min": slope, "first": points[0][1], "last": points[-1][1]}


class _Soak:
    def __init__(
        self,
        s: Settings,
        worker: WorkerProcess,
        on_row: Callable[[Row], None],
        every_s: float,
        seconds: float,
    ) -> None:
        self.s = s
        self.topics = list(kafka.telemetry_topics(s).values())
        self.worker = worker
        self.memory = psutil.Process(worker.proc.pid)
        self.on_row = on_row
        self.every_s = every_s
        # As many rows as the run's length holds; the last is taken once
        # publishing has ended, so that it holds the final sends.
        self.rows_due = max(1, math.ceil(seconds / every_s - 1e-9))
        self.rows: list[Row] = []
        self.sent: dict[float, float] = {}  # batch time -> wall clock its first message was sent
        self.lags: list[float] = []  # of windows decided since the last row
        self.samples = 0  # since the last row
        self.began = time.monotonic()

    def note(self, tel: Telemetry) -> None:
        self.sent.setdefault(tel.time, time.time())
        self.samples += tel.samples

    async def read_reports(self) -> None:
        windows = self.s.topic(kafka.WINDOWS)
        async with kafka.consumer(self.s, windows, auto_offset_reset="earliest") as consumer:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for part in batch.values():
                    for r in part:
                        sent = self.sent.get(orjson.loads(r.value).get("decided_at"))
                        if sent is not None:
                            self.lags.append(r.timestamp / 1000 - sent)

    async def take_row(self) -> Row:
        offsets = await group_offsets(self.s, self.s.app_id, self.topics)
        wall = time.monotonic() - self.began
        last = self.rows[-1].wall_s if self.rows else 0.0
        lags, self.lags = np.array(self.lags), []
        samples, self.samples = self.samples, 0
        row = Row(
            minute=len(self.rows) + 1,
            wall_s=round(wall, 1),
            samples=samples,
            samples_per_s=round(samples / max(wall - last, 1e-9)),
            lag_messages=sum(end - done for done, end in offsets.values()),
            lag_p50_s=round(float(np.percentile(lags, 50)), 3) if lags.size else None,
            lag_max_s=round(float(lags.max()), 3) if lags.size else None,
            windows=int(lags.size),
            rss_mb=round(self.memory.memory_info().rss / 2**20, 1),
        )
        self.rows.append(row)
        self.on_row(row)
        return row

    async def every_minute(self) -> None:
        for tick in itertools.count(1):
            await asyncio.sleep(max(0.0, self.began + self.every_s * tick - time.monotonic()))
            if not self.worker.alive:
                raise RuntimeError(f"the worker exited:\n{self.worker.tail()}")
            if len(self.rows) < self.rows_due - 1:
                await self.take_row()

    async def run(self, messages: Iterator[Telemetry | ChangeEvent], speed: float) -> int:
        self.began = time.monotonic()
        published = asyncio.create_task(publish(self.s, messages, speed, on_send=self.note))
        tasks = [asyncio.create_task(self.read_reports()), asyncio.create_task(self.every_minute())]
        try:
            done, _ = await asyncio.wait([published, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a failed monitor, or the worker's death, ends the run
        finally:
            # A row being taken right now is dropped before it counts (its
            # counters are reset only after its last await), and taken below.
            for task in [*tasks, published]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.take_row()  # the last row, up to the final send
        return published.result().messages


def soak(
    s: Settings,
    scenario: Scenario,
    sim_args: tuple[Any, ...],
    workdir: Path,
    minutes: float,
    rate: float,
    on_row: Callable[[Row], None] = lambda row: None,
    every_s: float = 60.0,
) -> dict[str, Any]:
    """Publish ``rate`` samples/s for ``minutes`` to one worker; a row every ``every_s``.

    On isolated settings (``isolated``), which the caller deletes when done.
    """
    loopback_only(s.kafka_bootstrap)
    speed = rate / samples_per_event_s(scenario, sim_args)
    last = scenario.start + minutes * 60 * speed
    if last > scenario.end:
        raise ValueError(
            f"{scenario.name} holds {(scenario.end - scenario.start) / 3600:.1f} h of event time; "
            f"{minutes:g} min at {rate:g} samples/s needs {(last - scenario.start) / 3600:.1f} h"
        )
    budget = int(minutes * 60 * rate * 1.1)  # a bound on count as well as on time
    messages = _bounded(Simulator(scenario, *sim_args).messages(), last, budget)
    with WorkerProcess(worker_env(s), workdir / f"{s.app_id}.log", workdir) as worker:
        worker.wait_ready()
        run = _Soak(s, worker, on_row, every_s, minutes * 60)
        published = asyncio.run(run.run(messages, speed))
    rows = run.rows
    minutes_at = [r.wall_s / 60 for r in rows]
    return {
        "scenario": scenario.name,
        "app_id": s.app_id,
        "minutes": minutes,
        "rate": rate,
        "speed": round(speed, 2),
        "messages": published,
        "samples": sum(r.samples for r in rows),
        "rows": [asdict(r) for r in rows],
        "trend": {
            "lag_messages": trend(minutes_at, [r.lag_messages for r in rows]),
            "lag_p50_s": trend(minutes_at, [r.lag_p50_s for r in rows]),
            "rss_mb": trend(minutes_at, [r.rss_mb for r in rows]),
        },
    }

"""``foreshock bench kafka``: the workers' throughput and lag on a real broker.

Throughput: the scenario is published first; then a bare aiokafka consumer
reads the same telemetry (fetching and nothing else), a group of workers
(one by default) detects on it, and a Faust agent that does nothing reads it
too (the ceiling of any Faust worker); each figure is samples over the time
from its first record to its last. The window reports the workers wrote are
then fed to one correlator in process: the reports per second that one
correlator can take, whatever the number of workers feeding it. Lag: on a
second, isolated set of topics, the scenario is published at a steady pace
below capacity while the workers run; for every window they decide, the lag
is from when the telemetry message that closed the window was sent to when
its report reached the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import ConsumerRecord
from aiokafka.errors import for_code

from infra import kafka
from infra.settings import Settings
from models.changes import ChangeEvent
from models.config import PipelineConfig
from models.correlate import CorrelateStage
from models.impact import Business
from models.pipeline import DetectionPipeline
from models.report import WindowReport
from models.schema import Telemetry, encode
from models.topology import Topology
from producers.kafka import publish
from producers.scenario import Scenario
from producers.sources.simulator import Simulator
from streams.embedded import EmbeddedEngine


def isolated(settings: Settings, name: str | None = None) -> Settings:
    """The same broker, with topics, tables and consumer group of its own."""
    name = name or f"bench{uuid.uuid4().hex[:8]}"
    return settings.model_copy(update={"topic_prefix": f"{name}.", "app_id": name})


@dataclass
class Removed:
    topics: list[str]
    groups: list[str]
    failed: dict[str, str]  # topic or group -> the broker's error


def _made_by(runs: list[Settings], name: str) -> bool:
    """Whether one of these isolated runs made this topic or consumer group:
    its prefixed topics, and what Faust names after its app id (table
    changelogs, the assignor's leader topic, the passthrough agent's group)."""
    return any(name.startswith((s.topic_prefix, f"{s.app_id}-")) or name == s.app_id for s in runs)


async def remove_isolated(runs: Iterable[Settings]) -> Removed:
    """Delete every topic and consumer group these isolated runs made, once
    their workers have stopped (a group with members cannot be deleted)."""
    runs = list(runs)
    for s in runs:
        # An empty prefix would match every topic of a shared cluster.
        if s.topic_prefix != f"{s.app_id}.":
            raise ValueError(f"not an isolated run: app id {s.app_id!r}, prefix {s.topic_prefix!r}")
    removed = Removed([], [], {})
    if not runs:
        return removed
    async with kafka.admin(runs[0]) as a:
        groups = [group for group, *_ in await a.list_consumer_groups() if _made_by(runs, group)]
        topics = [t for t in await a.list_topics() if _made_by(runs, t)]
        for done, codes in (
            (removed.groups, await kafka.delete_groups(a, groups)),
            (removed.topics, await kafka.delete_topics(a, topics)),
        ):
            for name, code in codes.items():
                if code:
                    removed.failed[name] = for_code(code).__name__
                else:
                    done.append(name)
    return removed


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that hands these settings to a worker process."""
    env = dict(os.environ)
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"FORESHOCK_{name.upper()}"] = str(value)
    password = settings.kafka_sasl_password
    if password is not None:
        env["FORESHOCK_KAFKA_SASL_PASSWORD"] = password.get_secret_value()
    env["FORESHOCK_WEB_ENABLED"] = "false"
    return env


FORESHOCK_WORKER = ("-m", "foreshock", "worker", "--loglevel", "info")
PASSTHROUGH_WORKER = ("-m", "bench.passthrough", "worker", "--loglevel", "warn", "--without-web")


class WorkerProcess:
    """One worker process (Foreshock's, by default), logging to a file."""

    def __init__(
        self, env: dict[str, str], log: Path, cwd: Path, argv: tuple[str, ...] = FORESHOCK_WORKER
    ) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            env=env,
            cwd=cwd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def wait_ready(self, timeout_s: float = 120) -> None:
        """Until the worker has joined its group and started its agents."""
        deadline = time.monotonic() + timeout_s
        while "Worker]: Ready" not in self.text():
            if time.monotonic() > deadline or not self.alive:
                raise TimeoutError(f"worker not ready:\n{self.tail()}")
            time.sleep(0.5)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> None:
        if self.alive:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def worker_group(s: Settings, workdir: Path, count: int = 1) -> Iterator[list[WorkerProcess]]:
    """``count`` workers in one consumer group, all started at once, each
    ready when this yields; stopped on leaving."""
    with contextlib.ExitStack() as stack:
        group = [
            stack.enter_context(
                WorkerProcess(worker_env(s), workdir / f"{s.app_id}-{i}.log", workdir)
            )
            for i in range(count)
        ]
        for worker in group:
            worker.wait_ready()
        yield group


async def records(
    s: Settings,
    topics: Iterable[str],
    done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read topics from the beginning until ``done(all read so far)``."""
    seen: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    async with kafka.consumer(s, *topics, auto_offset_reset="earliest") as consumer:
        while not done(seen):
            if time.monotonic() > deadline or not alive():
                raise TimeoutError(f"gave up after {timeout_s:.0f} s with {len(seen)} records")
            batch = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            for part in batch.values():
                seen.extend(part)
    return seen


async def bare_consumer(s: Settings, topics: Iterable[str], messages: int) -> float:
    """Seconds a plain consumer takes from its first record to the last of ``messages``."""
    seen, began = 0, 0.0
    async with kafka.consumer(s, *topics, auto_offset_reset="earliest") as consumer:
        while seen < messages:
            batch = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            if batch and not seen:
                began = time.monotonic()
            seen += sum(map(len, batch.values()))
        return time.monotonic() - began


def _span_s(recs: list[ConsumerRecord[bytes, bytes]]) -> float:
    """From the first record to the last, by the time each was sent."""
    stamps = [r.timestamp for r in recs]
    return (max(stamps) - min(stamps)) / 1000


@dataclass
class Reports:
    """Window reports read back, until every partition with telemetry has
    decided its last window: the one the final batch, sent at ``last_time``,
    could close."""

    sources: set[str]
    last_time: float

    def done(self, recs: list[ConsumerRecord[bytes, bytes]]) -> bool:
        # Windows close once per window length, so the last close falls in
        # the final window length of the stream.
        final = self.last_time - PipelineConfig().window_s
        finished = set()
        for r in recs:
            body = orjson.loads(r.value)
            # Not a forwarded change, nor an early look at a window still open.
            if "decided_at" in body and body["decided_at"] > final and not body.get("early"):
                finished.add(body["source"])
        return self.sources <= finished


async def sources_with_data(s: Settings) -> set[str]:
    return set(await kafka.partitions_with_data(s))


def throughput(
    s: Settings,
    scenario: Scenario,
    sim_args: tuple[Any, ...],
    workdir: Path,
    workers: int = 1,
) -> dict[str, Any]:
    """On isolated settings (``isolated``), which the caller deletes when done."""
    sim = Simulator(scenario, *sim_args)
    published = asyncio.run(publish(s, sim.messages()))
    topics = kafka.telemetry_topics(s).values()
    bare_s = asyncio.run(bare_consumer(s, topics, published.messages))
    sources = asyncio.run(sources_with_data(s))
    with worker_group(s, workdir, workers) as group:
        # The workers create their output topics before they are ready; a
        # consumer subscribed earlier asks for a topic the broker does not know yet.
        reports = asyncio.run(
            records(
                s,
                [s.topic(kafka.WINDOWS)],
                Reports(sources, scenario.end).done,
                1800,
                lambda: all(w.alive for w in group),
            )
        )
    worker_s = _span_s(reports)
    raws = (r.value or b"" for r in reports)
    correlated, correlator_s = correlator_ceiling(raws, sim.topology, sim.business)
    passthrough_s = _passthrough(s, workdir, published.messages)
    embedded_s = _embedded(Simulator(scenario, *sim_args))
    return {
        "scenario": scenario.name,
        "workers": workers,
        "partitions": s.partitions,
        "messages": published.messages,
        "samples": published.samples,
        "bytes": published.bytes,
        "publish_samples_per_s": round(published.samples_per_s),
        "worker_s": round(worker_s, 2),
        "samples_per_s": round(published.samples / worker_s),
        "bare_consumer_s": round(bare_s, 2),
        "bare_consumer_samples_per_s": round(published.samples / bare_s),
        "ratio": round(bare_s / worker_s, 3),
        "passthrough_agent_s": round(passthrough_s, 2),
        "passthrough_agent_samples_per_s": round(published.samples / passthrough_s),
        "ratio_to_passthrough_agent": round(passthrough_s / worker_s, 3),
        "embedded_s": round(embedded_s, 2),
        "embedded_samples_per_s": round(published.samples / embedded_s),
        "ratio_to_embedded": round(embedded_s / worker_s, 3),
        "ratio_embedded_to_bare_consumer": round(bare_s / embedded_s, 3),
        "reports": correlated,
        "reports_per_s": round(correlated / worker_s, 1),
        "correlator_reports_per_s": round(correlated / correlator_s),
    }


def correlator_ceiling(
    raws: Iterable[bytes], topology: Topology, business: Business
) -> tuple[int, float]:
    """The window reports among ``raws`` (records of the windows topic;
    forwarded changes left out), and the seconds one correlator takes to
    parse and correlate them all in process: the most reports per second
    any number of workers can feed it."""
    correlator = CorrelateStage(topology, business, PipelineConfig())
    began = time.perf_counter()
    reports = [r for raw in raws if isinstance(r := WindowReport.parse(raw), WindowReport)]
    correlator.expect({r.source for r in reports})
    for report in reports:
        correlator.add(report)
    correlator.finish()
    return len(reports), time.perf_counter() - began


def _embedded(sim: Simulator) -> float:
    """Seconds the same models take on the same bytes in one process, with no
    Kafka at all: the ceiling of any worker, whatever its transport."""
    encoded = [encode(m) for m in sim.messages() if isinstance(m, Telemetry)]
    engine = EmbeddedEngine(DetectionPipeline(sim.topology, sim.business, PipelineConfig()))
    return engine.run(encoded).wall_s


def _passthrough(s: Settings, workdir: Path, messages: int) -> float:
    """Seconds a do-nothing Faust agent takes over the same messages."""
    log = workdir / f"{s.app_id}-passthrough.log"
    with WorkerProcess(worker_env(s), log, workdir, PASSTHROUGH_WORKER) as agent:
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline and agent.alive:
            done = re.findall(rf"passthrough: {messages} messages in ([\d.]+) s", agent.text())
            if done:
                return float(done[0])
            time.sleep(1)
    raise TimeoutError(f"the passthrough agent did not finish:\n{agent.tail()}")


def _until(
    messages: Iterator[Telemetry | ChangeEvent], last: float
) -> Iterator[Telemetry | ChangeEvent]:
    return itertools.takewhile(lambda m: m.time <= last, messages)


def lag(
    s: Settings,
    scenario: Scenario,
    sim_args: tuple[Any, ...],
    workdir: Path,
    speed: float,
    seconds: float,
    workers: int = 1,
) -> dict[str, Any]:
    """On isolated settings (``isolated``), which the caller deletes when done."""
    sim = Simulator(scenario, *sim_args)
    # Created now: the worker, started first, must find its topics.
    asyncio.run(
        kafka.ensure_topics(s, dict.fromkeys(kafka.telemetry_topics(s).values(), s.partitions))
    )
    last = scenario.start + seconds * speed
    sent: dict[float, float] = {}  # batch time -> wall clock its first message was sent

    def note(tel: Telemetry) -> None:
        sent.setdefault(tel.time, time.time())

    with worker_group(s, workdir, workers) as group:  # ready before the clock starts
        published = asyncio.run(publish(s, _until(sim.messages(), last), speed, on_send=note))
        sources = asyncio.run(sources_with_data(s))
        reports = asyncio.run(
            records(
                s,
                [s.topic(kafka.WINDOWS)],
                Reports(sources, max(sent)).done,
                600,
                lambda: all(w.alive for w in group),
            )
        )
    lags = np.array(
        [
            r.timestamp - sent[body["decided_at"]] * 1000
            for r in reports
            if "decided_at" in (body := orjson.loads(r.value))
        ]
    )
    return {
        "lag_speed": speed,
        "lag_samples_per_s": round(published.samples_per_s),
        "lag_windows": len(lags),
        "lag_p50_ms": round(float(np.percentile(lags, 50)), 1),
        "lag_p99_ms": round(float(np.percentile(lags, 99)), 1),
        "lag_max_ms": round(float(lags.max()), 1),
    }

"""``foreshock lab``: a real Redis that leaks, watched through a real
Prometheus, remote_write, Kafka and a worker; its timeline shown live."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Annotated

import orjson
import typer

from foreshock.cli.checks import reach_broker
from foreshock.cli.common import console, settings_of, writable
from foreshock.cli.render import Timeline, incident_change
from infra import kafka
from infra.servers import MissingBinary, Prometheus, Redis, RedisExporter
from infra.settings import Settings
from producers.lab import TOPOLOGY, Lab, LabConfig
from streams.sinks.wire import event_from_dict

STATUS_EVERY_S = 10.0


def lab(
    ctx: typer.Context,
    minutes: Annotated[float, typer.Option(min=0.5, help="how long to run")] = 4.0,
    maxmemory: Annotated[str, typer.Option(help="Redis's maxmemory")] = "16mb",
    leak: Annotated[float, typer.Option(min=0, help="bytes/s leaked into Redis")] = 150_000.0,
    workdir: Annotated[Path, typer.Option(help="the worker's log")] = Path("out/lab"),
) -> None:
    """Run the lab: Redis fills, Foreshock warns before it is full, then pages."""
    from bench.kafka import WorkerProcess, isolated, remove_isolated, worker_env

    for server in (Redis, RedisExporter, Prometheus):
        if not server.installed():
            raise typer.BadParameter(server.missing())
    base = settings_of(ctx)
    reach_broker(base)
    settings = isolated(base.model_copy(update={"topology": TOPOLOGY, "window_s": 2.0}), "lab")
    with writable("--workdir", workdir):
        workdir.mkdir(parents=True, exist_ok=True)
    shown = [settings.topic(kafka.ANOMALIES), settings.topic(kafka.INCIDENTS)]
    asyncio.run(kafka.ensure_topics(settings, dict.fromkeys(shown, settings.partitions)))
    config = LabConfig(maxmemory=maxmemory, leak_bytes_per_s=leak)
    worker = WorkerProcess(worker_env(settings), workdir / "worker.log", workdir)
    try:
        with Lab(settings, config) as running:
            console.print(
                f"lab: Redis {maxmemory} at {running.redis.url}, Prometheus at "
                f"{running.prometheus.url}, ingest at {running.receiver.url}; "
                f"leaking {leak:,.0f} B/s from {config.leak_after_s:g} s; "
                f"worker log {workdir / 'worker.log'}. Ctrl-C stops it all."
            )
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_show(settings, running, time.monotonic() + minutes * 60))
            if running.full_at is not None:
                full = time.strftime("%H:%M:%S", time.gmtime(running.full_at))
                console.print(f"Redis reached its maxmemory at {full} UTC, by its INFO")
    except MissingBinary as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        worker.stop()
        asyncio.run(remove_isolated([settings]))


async def _show(settings: Settings, running: Lab, until: float) -> None:
    """The timeline of what the worker finds, and Redis's state now and then."""
    timeline = Timeline(console, settings.load_topology(), origin=None)
    topics = [settings.topic(kafka.ANOMALIES), settings.topic(kafka.INCIDENTS)]
    status_due = 0.0
    async with kafka.consumer(settings, *topics, auto_offset_reset="earliest") as consumer:
        while time.monotonic() < until:
            batch = await consumer.getmany(timeout_ms=1000)
            for record in sorted(
                (r for rs in batch.values() for r in rs), key=lambda r: r.timestamp
            ):
                body = orjson.loads(record.value or b"{}")
                if record.topic == topics[1]:
                    console.print(incident_change(body), soft_wrap=True)
                elif (event := event_from_dict(body)) is not None:
                    timeline.emit(event)
            if time.monotonic() >= status_due:
                status_due = time.monotonic() + STATUS_EVERY_S
                used, maxmemory = running.used
                logins = running.load.snapshot().logins
                share = f"{used / maxmemory:.0%}" if maxmemory else "?"
                console.print(
                    f"[dim]redis {used / 2**20:.1f} MiB of {maxmemory / 2**20:.0f} MiB ({share}); "
                    f"logins {logins.successes:,} ok, {logins.failed:,} failed[/]"
                )

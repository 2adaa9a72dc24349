"""``foreshock produce``, ``foreshock change``, ``foreshock worker`` and
``foreshock incidents``: telemetry and change events onto the broker, a Faust
worker that reads them, and the incidents it writes."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Annotated

import faust
import orjson
import typer
from aiokafka.errors import KafkaError

from foreshock.cli.checks import reach_broker, web_port_free
from foreshock.cli.common import (
    Json,
    Pace,
    ScenarioName,
    Seed,
    Speed,
    alert_routes,
    console,
    fail,
    find_scenario,
    pipeline_inputs,
    settings_of,
    topology_and_business,
    usable,
)
from foreshock.cli.render import incident_change
from infra.kafka import CHANGES, INCIDENTS, ensure_topics, follow
from infra.settings import Settings
from models.changes import ChangeEvent, ChangeKind
from models.schema import SCHEMA_VERSION, Rejection
from producers.kafka import publish
from producers.sources import Simulator


def produce(
    ctx: typer.Context,
    scenario: ScenarioName,
    seed: Seed = 1,
    speed: Pace = Speed.max,
    json: Json = False,
) -> None:
    """Publish a scenario's telemetry to Kafka (FORESHOCK_KAFKA_BOOTSTRAP)."""
    # The Kafka client at DEBUG logs every request it sends, payloads and
    # all: some 500 MB a minute from a producer at full speed. (A worker's
    # `--loglevel debug` keeps them: its exchanges with the broker.)
    client = logging.getLogger("aiokafka")
    client.setLevel(max(client.getEffectiveLevel(), logging.INFO))
    settings = settings_of(ctx)
    sc = find_scenario(settings, scenario)
    topology, business = topology_and_business(settings)
    sim = Simulator(sc, topology, business, seed=seed)
    reach_broker(settings)
    if not json:
        console.print(
            f"publishing [bold]{sc.name}[/] (seed {seed}, {sim.series_count} series) "
            f"to {settings.kafka_bootstrap} at speed {speed.value}"
        )
    try:
        stats = asyncio.run(publish(settings, sim.messages(), speed.factor))
    except KafkaError as exc:
        fail(f"Kafka refused or lost the telemetry: {exc!r}", code=1)
    summary = {
        "scenario": sc.name,
        "seed": seed,
        "messages": stats.messages,
        "samples": stats.samples,
        "bytes": stats.bytes,
        "wall_s": round(stats.wall_s, 3),
        "samples_per_s": round(stats.samples_per_s),
    }
    if json:
        typer.echo(orjson.dumps(summary).decode())
    else:
        console.print(
            f"{stats.messages:,} messages, {stats.samples:,} samples in {stats.wall_s:.1f} s "
            f"({stats.samples_per_s:,.0f} samples/s)"
        )


def change(
    ctx: typer.Context,
    component: Annotated[str, typer.Argument(help="the component (or entity) that changed")],
    kind: Annotated[ChangeKind, typer.Argument(help="what kind of change")],
    description: Annotated[str, typer.Option(help="what changed, e.g. 'routing v42'")] = "",
    who: Annotated[str, typer.Option(help="who or what made the change")] = "",
    at: Annotated[str, typer.Option(help="when: an ISO time (UTC unless it says), or now")] = "now",
) -> None:
    """Announce a change (deploy, config push, flag...) to the workers on telemetry.changes."""
    settings = settings_of(ctx)
    topology = usable(settings.load_topology)
    body = {
        "v": SCHEMA_VERSION,
        "time": _moment(at),
        "component": component,
        "kind": kind.value,
        "description": description,
        "who": who,
    }
    event = ChangeEvent.validate(body, topology.names)
    if isinstance(event, Rejection):
        fail(f"--at {at}: {event.detail}" if event.reason == "implausible_time" else event.detail)
    reach_broker(settings)
    try:
        asyncio.run(publish(settings, [event]))
    except KafkaError as exc:
        fail(f"Kafka refused or lost the change: {exc!r}", code=1)
    console.print(f"published {event} to {settings.topic(CHANGES)}", markup=False)


def _moment(at: str) -> float:
    """``--at``: now, or an ISO time (UTC unless it gives its offset)."""
    if at.strip().lower() == "now":
        return time.time()
    try:
        stamp = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--at {at!r}: not a time; give an ISO time like 2022-10-04T12:45:05Z, or now")
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def worker(
    ctx: typer.Context,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="worker log level")] = "info",
) -> None:
    """Start a Faust worker: run more of them to share the partitions."""
    checked = settings_of(ctx)
    web_port_free(checked)
    usable(checked.load_mapping)  # first: the metrics it adds, which the topology may name
    pipeline_inputs(checked)  # read again by the worker, but only once it has joined
    if checked.alerts is not None:
        alert_routes(checked)
    from streams.app import TOPICS, settings  # the app reads its settings on import
    from streams.app import app as faust_app

    reach_broker(settings)
    asyncio.run(ensure_topics(settings, TOPICS))
    faust.Worker(faust_app, loglevel=loglevel).execute_from_commandline()


def incidents(
    ctx: typer.Context,
    keep_following: Annotated[
        bool,
        typer.Option(
            "--follow/--no-follow",
            help="go on printing changes as the workers write them (Ctrl-C stops), "
            "or stop at the last one written",
        ),
    ] = True,
    json: Annotated[
        bool, typer.Option("--json", help="print each change as it was written")
    ] = False,
) -> None:
    """Print every incident change the workers wrote to foreshock.incidents, the
    oldest first, as a replay's timeline shows them."""
    settings = settings_of(ctx)
    reach_broker(settings)
    try:
        asyncio.run(_print_incidents(settings, keep_following, json))
    except LookupError as exc:
        fail(f"{exc}: no worker has run with FORESHOCK_APP_ID={settings.app_id} there yet")
    except KeyboardInterrupt:
        pass


async def _print_incidents(settings: Settings, keep_following: bool, json: bool) -> None:
    topic = settings.topic(INCIDENTS)
    async for record in follow(settings, topic, to_end=not keep_following):
        value = record.value or b""
        if json:
            typer.echo(value.decode(errors="replace"))
            continue
        try:
            console.print(incident_change(orjson.loads(value)), soft_wrap=True)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            console.print(f"[dim]{topic} offset {record.offset}: not an incident change[/]")

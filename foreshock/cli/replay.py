"""``foreshock scenarios`` and ``foreshock replay``: the library, and one
scenario through the embedded engine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, cast

import orjson
import typer

from bench.replay import replay
from foreshock.cli.common import (
    Json,
    Pace,
    ScenarioName,
    Seed,
    Speed,
    alert_routes,
    console,
    errors,
    fail,
    find_scenario,
    pipeline_inputs,
    scenario_library,
    settings_of,
    tell_skipped,
    usable,
    writable,
)
from foreshock.cli.render import Timeline, clock, replay_summary, scenarios_table
from infra.settings import MAX_TOML_BYTES, Settings, read_file
from models.incident import IncidentEvent
from models.topology import Topology
from streams.alerts import Deliverer, Page, Runbooks
from streams.alerts.silences import Silences
from streams.sinks import JsonlSink, Sink, event_to_dict


def scenarios(ctx: typer.Context) -> None:
    """List the scenarios; those of files that cannot be used are told on stderr."""
    library = scenario_library(settings_of(ctx))
    console.print(scenarios_table(library))
    tell_skipped(library)


def replay_command(
    ctx: typer.Context,
    scenario: ScenarioName,
    seed: Seed = 1,
    speed: Pace = Speed.max,
    json: Json = False,
    out: Annotated[
        Path | None, typer.Option(help="append incident events to this JSONL file")
    ] = None,
    alert: Annotated[
        bool, typer.Option("--alert", help="a drill: page through the routes of FORESHOCK_ALERTS")
    ] = False,
    hold: Annotated[
        float,
        typer.Option(
            "--hold", min=0, help="seconds a drill keeps incidents open in the sinks, to look"
        ),
    ] = 0.0,
) -> None:
    """Replay a scenario through the detector and show the incident timeline."""
    settings = settings_of(ctx)
    sc = find_scenario(settings, scenario)
    topology, business, config = pipeline_inputs(settings)
    drill = _drill(settings, topology) if alert else None
    sinks: list[Sink] = []
    if out:
        with writable("--out", out):
            sinks.append(JsonlSink(out))
    if not json:
        console.print(f"[bold]{sc.name}[/] (seed {seed}): {sc.description}")
        if sc.truth.fault_start is not None:
            console.print(f"[dim]T is the fault start, {clock(sc.truth.fault_start)} UTC[/dim]")
        sinks.append(Timeline(console, topology, sc.truth.fault_start))
    try:
        result = replay(
            sc, topology, business, seed=seed, speed=speed.factor, sinks=sinks, config=config
        )
    finally:
        for sink in sinks:
            sink.close()
    if drill is not None:
        changes = [e for e in result.events if isinstance(e, IncidentEvent)]
        pages = [Page.from_record(event_to_dict(e)) for e in changes]
        if hold and not json:
            console.print(f"drill: paging, and holding resolutions back for {hold:g} s…")
        sent = asyncio.run(_page(drill, pages, hold))
        say = errors if json else console
        say.print(f"drill: {len(pages)} incident changes paged, {sent}", soft_wrap=True)
    if json:
        typer.echo(orjson.dumps(result.to_dict(topology)).decode())
        return
    for renderable in replay_summary(result):
        console.print(renderable)


def _drill(settings: Settings, topology: Topology) -> Deliverer:
    """The deliverer of a drill, from FORESHOCK_ALERTS; or one line on what to fix."""
    if settings.alerts is None:
        fail("--alert: set FORESHOCK_ALERTS to a routes file (README: Pages to on-call)")
    routes = alert_routes(settings)
    runbooks = Runbooks(topology, settings.runbooks, settings.runbook_url)
    silences = Silences()
    if settings.silences is not None:
        silences = usable(lambda: _silences(cast(Path, settings.silences)))
    return Deliverer(routes, runbooks, muted=silences.muted)


def _silences(path: Path) -> Silences:
    try:
        return Silences.from_file(read_file(path, MAX_TOML_BYTES, "a JSON list of silences"))
    except ValueError as exc:
        raise ValueError(f"FORESHOCK_SILENCES: {path}: {exc}") from exc


async def _page(deliverer: Deliverer, pages: list[Page], hold: float) -> str:
    """Deliver every page in order, but each incident's final resolution,
    sent ``hold`` seconds after the rest; what each sink took."""
    last = {page.id: page for page in pages}
    final = [p for p in last.values() if p.resolved]
    taken: dict[str, int] = {}
    async with deliverer:
        for batch in ([p for p in pages if p not in final], final):
            if batch is final and final:
                await asyncio.sleep(hold)
            for page in batch:
                for name in await deliverer.deliver(page):
                    taken[name] = taken.get(name, 0) + 1
    return ", ".join(f"{n} to {name}" for name, n in taken.items()) or "no sink took any"

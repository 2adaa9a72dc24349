"""``foreshock scenarios`` and ``foreshock replay``: the library, and one
scenario through the embedded engine."""

from __future__ import annotations

import asyncio
import sys
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
from streams.board import Board, BoardSink
from streams.sinks import JsonlSink, Sink, event_to_dict
from streams.web import Served, operators_app


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
    serve: Annotated[
        str | None,
        typer.Option(
            "--serve",
            metavar="[HOST:]PORT",
            help="serve the incident page and API there while replaying, then until Ctrl-C",
        ),
    ] = None,
) -> None:
    """Replay a scenario through the detector and show the incident timeline."""
    settings = settings_of(ctx)
    sc = find_scenario(settings, scenario)
    topology, business, config = pipeline_inputs(settings)
    drill = _drill(settings, topology) if alert else None
    sinks: list[Sink] = []
    board = Board(topology, Runbooks(topology, settings.runbooks, settings.runbook_url))
    server = _serve(board, settings, serve) if serve else None
    if server is not None:
        sinks.append(BoardSink(board))
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
            sc,
            topology,
            business,
            seed=seed,
            speed=speed.factor,
            sinks=sinks,
            config=config,
            tap=board.sample if server is not None else None,
        )
    finally:
        for sink in sinks:
            sink.close()
        if server is not None and sys.exc_info()[0] is not None:
            server.stop()
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
    else:
        for renderable in replay_summary(result):
            console.print(renderable)
    if server is not None:
        server.wait()


def _serve(board: Board, settings: Settings, where: str) -> Served:
    """The view served on ``[HOST:]PORT`` (the host FORESHOCK_WEB_HOST unless
    given); or one line on what to fix."""
    host, _, port = where.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"--serve {where}: give a port, or HOST:PORT")
    token = settings.web_token.get_secret_value() if settings.web_token else None
    try:
        view = operators_app(board, token=token, health=lambda: {"engine": "replay"})
        server = Served(view, host or settings.web_host, int(port))
    except OSError as exc:
        fail(f"--serve {where}: cannot listen there ({exc.strerror or exc})")
    shown = f"http://{host or settings.web_host}:{port}/"
    errors.print(f"the incident page: {shown} (Ctrl-C to stop)", soft_wrap=True, highlight=False)
    return server


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

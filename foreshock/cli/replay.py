"""``foreshock scenarios`` and ``foreshock replay``: the library, and one
scenario through the embedded engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from bench.replay import replay
from foreshock.cli.common import (
    Json,
    Pace,
    ScenarioName,
    Seed,
    Speed,
    console,
    fail,
    find_scenario,
    settings_of,
)
from foreshock.cli.render import Timeline, clock, replay_summary, scenarios_table
from producers.scenario import load_scenarios
from streams.sinks import JsonlSink, Sink


def scenarios(ctx: typer.Context) -> None:
    """List the scenarios."""
    console.print(scenarios_table(load_scenarios(settings_of(ctx).scenarios)))


def replay_command(
    ctx: typer.Context,
    scenario: ScenarioName,
    seed: Seed = 1,
    speed: Pace = Speed.max,
    json: Json = False,
    out: Annotated[
        Path | None, typer.Option(help="append incident events to this JSONL file")
    ] = None,
) -> None:
    """Replay a scenario through the detector and show the incident timeline."""
    settings = settings_of(ctx)
    sc = find_scenario(settings, scenario)
    topology, business = settings.load_topology(), settings.load_business()
    try:
        config = settings.pipeline_config(topology)
    except (OSError, ValueError) as exc:
        fail(f"cannot use the settings: {exc}")
    sinks: list[Sink] = []
    if not json:
        console.print(f"[bold]{sc.name}[/] (seed {seed}): {sc.description}")
        if sc.truth.fault_start is not None:
            console.print(f"[dim]T is the fault start, {clock(sc.truth.fault_start)} UTC[/dim]")
        sinks.append(Timeline(console, topology, sc.truth.fault_start))
    if out:
        sinks.append(JsonlSink(out))
    try:
        result = replay(
            sc, topology, business, seed=seed, speed=speed.factor, sinks=sinks, config=config
        )
    finally:
        for sink in sinks:
            sink.close()
    if json:
        typer.echo(orjson.dumps(result.to_dict(topology)).decode())
        return
    for renderable in replay_summary(result):
        console.print(renderable)

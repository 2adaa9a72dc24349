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
    find_scenario,
    pipeline_inputs,
    scenario_library,
    settings_of,
    tell_skipped,
    writable,
)
from foreshock.cli.render import Timeline, clock, replay_summary, scenarios_table
from streams.sinks import JsonlSink, Sink


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
) -> None:
    """Replay a scenario through the detector and show the incident timeline."""
    settings = settings_of(ctx)
    sc = find_scenario(settings, scenario)
    topology, business, config = pipeline_inputs(settings)
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
    if json:
        typer.echo(orjson.dumps(result.to_dict(topology)).decode())
        return
    for renderable in replay_summary(result):
        console.print(renderable)

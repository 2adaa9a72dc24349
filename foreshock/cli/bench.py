"""``foreshock bench``: the scenario benchmark, and its subcommands ``kafka``,
``memory``, ``soak`` and ``nab``. Figures and ratios, never pass/fail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from aiokafka.errors import KafkaError

from foreshock.cli.checks import reach_broker
from foreshock.cli.common import (
    Json,
    KeepTopics,
    Seed,
    Workdir,
    above_zero,
    console,
    errors,
    fail,
    find_scenario,
    scenario_library,
    settings_of,
    tell_skipped,
    topology_and_business,
    writable,
)
from foreshock.cli.render import (
    ingest_table,
    kafka_table,
    memory_table,
    nab_compare_table,
    nab_cv_table,
    nab_table,
    progress_bar,
    soak_row,
    soak_trends_table,
)
from infra.settings import Settings

if TYPE_CHECKING:
    from bench.nab import CrossValidation, ProfileResult, Run

app = typer.Typer(help="Benchmarks: figures and ratios, never pass/fail.")


@app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    scenarios: Annotated[
        list[str] | None,
        typer.Option("--scenarios", help="scenario names or files name.toml (default: all)"),
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="seeds 1..N of each scenario")] = 5,
    jobs: Annotated[
        int, typer.Option(min=0, help="parallel processes (default: one per core)")
    ] = 0,
    out: Annotated[Path, typer.Option(help="report.json, report.md, report.html and plots")] = Path(
        "out/bench"
    ),
) -> None:
    """MTTD benchmark: scenarios × seeds on the embedded engine, scored against their truth."""
    if ctx.invoked_subcommand is not None:
        return
    from bench.report import render_tables
    from bench.scenarios import choose, run_bench

    settings = settings_of(ctx)  # the runner reads them again, in each process
    topology_and_business(settings)
    tell_skipped(scenario_library(settings))
    try:
        choose(scenarios)
    except KeyError as exc:
        fail(str(exc.args[0]))
    except ValueError as exc:  # a file that cannot be used
        fail(str(exc))
    with writable("--out", out):  # now, not after the runs
        out.mkdir(parents=True, exist_ok=True)
    with progress_bar(console) as progress:
        report = run_bench(scenarios, seeds, jobs, out, progress)
    for renderable in render_tables(report):
        console.print(renderable)
    console.print(f"[dim]report.json, report.md, report.html and plots in {out}/[/dim]")


@app.command()
def kafka(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Option(help="scenario to publish")] = "reference-2022-10-04",
    seed: Seed = 1,
    lag_speed: Annotated[
        float,
        typer.Option(callback=above_zero, help="pace of the lag run, × real time (below capacity)"),
    ] = 50.0,
    lag_seconds: Annotated[
        float, typer.Option(callback=above_zero, help="wall seconds of the lag run")
    ] = 60.0,
    workers: Annotated[
        int, typer.Option(min=1, help="worker processes in one group, on this machine")
    ] = 1,
    partitions: Annotated[
        int | None,
        typer.Option(min=1, help="partitions per telemetry topic [default: FORESHOCK_PARTITIONS]"),
    ] = None,
    workdir: Workdir = Path("out/bench-kafka"),
    json: Json = False,
    keep_topics: KeepTopics = False,
) -> None:
    """Workers on the broker (FORESHOCK_KAFKA_BOOTSTRAP): samples/s end to end,
    against a bare aiokafka consumer, a do-nothing Faust agent and the same
    models without Kafka; the correlator's ceiling; ingest-to-emission lag."""
    from bench.kafka import isolated, lag, throughput

    settings = settings_of(ctx)
    if partitions is not None:
        settings = settings.model_copy(update={"partitions": partitions})
    sc = find_scenario(settings, scenario)
    reach_broker(settings)
    sim_args = (*topology_and_business(settings), seed)
    with writable("--workdir", workdir):
        workdir.mkdir(parents=True, exist_ok=True)
    runs = [isolated(settings), isolated(settings)]  # throughput, lag
    try:
        group = f"{workers} worker{'s' if workers > 1 else ''}"
        with console.status(f"throughput: publishing, bare consumer, {group}…"):
            result = throughput(runs[0], sc, sim_args, workdir, workers)
        with console.status(f"lag: publishing at ×{lag_speed:g} for {lag_seconds:g} s…"):
            result |= lag(runs[1], sc, sim_args, workdir, lag_speed, lag_seconds, workers)
    finally:
        _clean_up(runs, keep_topics, json)
    if json:
        typer.echo(orjson.dumps(result).decode())
        return
    console.print(kafka_table(result, f"bench kafka: {sc.name}, seed {seed}", lag_speed))


@app.command()
def ingest(
    ctx: typer.Context,
    requests: Annotated[int, typer.Option(min=10, help="remote_write bodies to send")] = 500,
    samples_per_request: Annotated[
        int, typer.Option(min=1, help="samples per body (Prometheus's max_samples_per_send)")
    ] = 2000,
    concurrency: Annotated[
        int, typer.Option(min=1, help="bodies in flight at once (Prometheus's shards)")
    ] = 4,
    workdir: Workdir = Path("out/bench-ingest"),
    json: Json = False,
    keep_topics: KeepTopics = False,
) -> None:
    """`foreshock ingest` on the broker: remote_write samples/s taken into Kafka,
    the receiver's CPU, and request latency."""
    from bench.ingest import throughput
    from bench.kafka import isolated

    settings = settings_of(ctx)
    topology, _ = topology_and_business(settings)
    reach_broker(settings)
    with writable("--workdir", workdir):
        workdir.mkdir(parents=True, exist_ok=True)
    run = isolated(settings)
    try:
        with console.status(f"sending {requests:,} bodies of {samples_per_request:,} samples…"):
            result = throughput(run, topology, workdir, requests, samples_per_request, concurrency)
    finally:
        _clean_up([run], keep_topics, json)
    if json:
        typer.echo(orjson.dumps(result).decode())
        return
    console.print(ingest_table(result))


@app.command()
def memory(
    series: Annotated[
        # About 1.4 KB each: two million hold some 3 GB, within any machine's memory.
        int, typer.Option(min=10, max=2_000_000, help="series in the larger world")
    ] = 100_000,
    json: Json = False,
) -> None:
    """Bytes of model state per series: the detection stage's snapshot and the
    growth of resident memory, for a world of SERIES series and one a tenth
    its size, each fed past its warm-up in a fresh process."""
    from bench.memory import measure, sizes

    small, large = sizes(series)
    with console.status(f"feeding {small:,} then {large:,} series…"):
        result = measure(series)
    if json:
        typer.echo(orjson.dumps(result).decode())
        return
    console.print(memory_table(result))


@app.command()
def soak(
    ctx: typer.Context,
    minutes: Annotated[
        float, typer.Option(callback=above_zero, help="length of the run, in minutes")
    ] = 20.0,
    rate: Annotated[
        float, typer.Option(callback=above_zero, help="samples/s published, steady")
    ] = 20_000.0,
    scenario: Annotated[str, typer.Option(help="scenario to publish")] = "baseline-24h",
    seed: Seed = 1,
    every: Annotated[float, typer.Option(callback=above_zero, help="seconds between rows")] = 60.0,
    workdir: Annotated[Path, typer.Option(help="where the worker's log goes")] = Path(
        "out/bench-soak"
    ),
    json: Json = False,
    keep_topics: KeepTopics = False,
) -> None:
    """One worker under a steady rate into the local broker: consumer lag and the
    worker's resident memory every minute, and the trend of each."""
    from bench.kafka import isolated
    from bench.soak import Row, loopback_only
    from bench.soak import soak as run_soak

    settings = settings_of(ctx)
    sc = find_scenario(settings, scenario)
    try:
        loopback_only(settings.kafka_bootstrap)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    reach_broker(settings)
    sim_args = (*topology_and_business(settings), seed)
    with writable("--workdir", workdir):
        workdir.mkdir(parents=True, exist_ok=True)

    def show(row: Row) -> None:
        if not json:
            console.print(soak_row(row))

    run = isolated(settings, f"soak{int(time.time())}")
    try:
        result = run_soak(run, sc, sim_args, workdir, minutes, rate, show, every)
    except ValueError as exc:  # a remote broker, or a run longer than the scenario
        raise typer.BadParameter(str(exc)) from exc
    finally:
        _clean_up([run], keep_topics, json)
    if json:
        typer.echo(orjson.dumps(result).decode())
        return
    console.print(soak_trends_table(result))


@app.command()
def nab(
    data: Annotated[Path, typer.Option(help="a NAB data folder (<folder>/<series>.csv)")],
    labels: Annotated[Path, typer.Option(help="NAB's combined_windows.json")],
    out: Annotated[Path, typer.Option(help="results folder, in NAB's layout")] = Path("out/nab"),
    detector: Annotated[str, typer.Option(help="a registered per-series detector")] = "surprise",
    compare: Annotated[
        str, typer.Option(help="detectors to score in the same run, comma-separated")
    ] = "",
    cv: Annotated[
        bool,
        typer.Option(
            "--cv", help="leave-one-folder-out: tune on the other folders, score the one left out"
        ),
    ] = False,
    json: Json = False,
) -> None:
    """Score a per-series detector on a NAB corpus (NAB's rules and profiles),
    beside River's defaults; or, with --compare, several detectors in one table;
    or, with --cv, each folder with the settings tuned on the others."""
    from bench import nab as nabench
    from models.detectors import DETECTORS

    names = [n.strip() for n in compare.split(",") if n.strip()] or [detector]
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        fail(f"no detector {', '.join(unknown)}; registered: {', '.join(sorted(DETECTORS))}")
    try:
        corpus = nabench.load_corpus(data, labels)
    except (OSError, ValueError) as exc:  # a missing file, or one not in NAB's format
        fail(f"cannot read the NAB corpus: {exc}")
    with writable("--out", out):  # now, not after the runs
        out.mkdir(parents=True, exist_ok=True)
    for s in corpus:
        if s.warning:
            errors.print(f"warning: {s.warning}", soft_wrap=True)
    if cv:
        folds = nabench.cross_validate(corpus, detector)
        if json:
            typer.echo(orjson.dumps(_cv_summary(folds)).decode())
        else:
            console.print(nab_cv_table(folds, len(corpus)))
        return
    runs = {name: nabench.run(corpus, partial(nabench.DetectorScorer, name)) for name in names}
    scored = {name: nabench.score_corpus(corpus, r.scores) for name, r in runs.items()}
    for name, r in runs.items():
        nabench.write_results(out, corpus, r.scores, detector=name)
    summaries = {name: _nab_summary(scored[name], r) for name, r in runs.items()}
    if compare:
        if json:
            typer.echo(orjson.dumps(summaries).decode())
            return
        console.print(nab_compare_table(scored, runs, len(corpus)))
        console.print(f"results in {out}/<detector>/")
        return
    river = nabench.score_corpus(corpus, nabench.run(corpus, nabench.RiverBaseline).scores)
    summary = summaries[detector]
    summary |= {f"river_sad_{name}": round(r.score, 2) for name, r in river.items()}
    if json:
        typer.echo(orjson.dumps(summary).decode())
        return
    result = runs[detector]
    console.print(nab_table(scored[detector], river, len(corpus)))
    console.print(
        f"{result.points:,} points at {result.points_per_second:,.0f} points/s; "
        f"results in {out}/{detector}/"
    )


def _cv_summary(cv: CrossValidation) -> dict[str, object]:
    return {
        "profile": cv.profile,
        "held_out_mean": round(cv.mean, 2),
        "held_out_sd": round(cv.spread, 2),
        "folds": [
            {
                "folder": f.folder,
                "series": f.series,
                "windows": f.windows,
                "settings": f.settings,
                "threshold": round(f.threshold, 4),
                "train": round(f.train, 2),
                "held_out": None if f.held_out is None else round(f.held_out, 2),
                "false_alarms": f.false_alarms,
            }
            for f in cv.folds
        ],
    }


def _nab_summary(scores: Mapping[str, ProfileResult], run: Run) -> dict[str, float | int]:
    summary: dict[str, float | int] = {name: round(r.score, 2) for name, r in scores.items()}
    return summary | {"points": run.points, "points_per_s": round(run.points_per_second)}


def _clean_up(runs: list[Settings], keep: bool, json: bool) -> None:
    """Delete the topics and consumer groups of a benchmark's isolated runs, so
    that a shared cluster does not collect them. Under --json the line goes to
    stderr: stdout holds the JSON object alone."""
    from bench.kafka import remove_isolated

    say = errors if json else console
    names = ", ".join(s.app_id for s in runs)
    if keep:
        say.print(f"kept the topics and consumer groups of {names}", soft_wrap=True)
        return
    try:
        removed = asyncio.run(remove_isolated(runs))
    except (KafkaError, OSError) as exc:  # never hide why the run itself ended
        errors.print(
            f"[bold red]error:[/] could not delete the topics of {names}: {exc!r}", soft_wrap=True
        )
        return
    topics, groups = _many(removed.topics, "topic"), _many(removed.groups, "consumer group")
    line = f"deleted {topics} and {groups} of {names}"
    if removed.failed:
        line += "; not deleted: " + ", ".join(f"{n} ({e})" for n, e in removed.failed.items())
    say.print(line, soft_wrap=True)


def _many(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"

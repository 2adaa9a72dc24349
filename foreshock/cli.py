"""The one command-line entry point: ``foreshock``."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import faust
import orjson
import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from foreshock.settings import Settings
from models.detect import Anomaly
from models.gaps import TelemetryGap
from models.incident import IncidentEvent
from models.pipeline import Event, LatePoints
from models.topology import Topology
from models.trend import CreepWarning, ExhaustionWarning
from producers.kafka import (
    TELEMETRY_TOPICS,
    BrokerAccessError,
    check_broker,
    ensure_topics,
    publish,
)
from producers.scenario import Scenario, load_scenarios
from producers.simulator import Simulator
from bench.replay import Replay, replay
from streams.sinks import JsonlSink, Sink

app = typer.Typer(add_completion=False, no_args_is_help=True)
console = Console(highlight=False, width=max(120, Console().width))
errors = Console(stderr=True, highlight=False)


class Speed(StrEnum):
    max = "max"
    x1 = "1"
    x10 = "10"


# Options that several commands share.
ScenarioName = Annotated[str, typer.Argument(help="scenario name (see `foreshock scenarios`)")]
Seed = Annotated[int, typer.Option(help="random seed of the synthetic world")]
Pace = Annotated[Speed, typer.Option(help="max: as fast as possible; 1, 10: × real time")]
Json = Annotated[bool, typer.Option("--json", help="print one JSON object instead")]
KeepTopics = Annotated[
    bool,
    typer.Option("--keep-topics", help="keep the run's topics and consumer groups on the broker"),
]


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _offset(t: float, origin: float | None) -> str:
    if origin is None:
        return ""
    d = round(t - origin)
    sign = "+" if d >= 0 else "-"
    m, s = divmod(abs(d), 60)
    h, m = divmod(m, 60)
    return f"T{sign}{h}h{m:02d}m{s:02d}s" if h else f"T{sign}{m}m{s:02d}s"


def _reach_broker(settings: Settings) -> None:
    """Stop here, with the cause and a non-zero exit, when the broker cannot
    be used: a wrong password must not look like a hang or a traceback."""
    try:
        asyncio.run(check_broker(settings.kafka_client_options()))
    except BrokerAccessError as exc:
        errors.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None


def _web_port_free(settings: Settings) -> None:
    """Stop here when the worker's web server cannot bind: Faust would find
    out only after joining the group, and end with a traceback."""
    if not settings.web_enabled:
        return
    host, port = settings.web_host, settings.web_port
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            with socket.socket(family, kind, proto) as probe:
                # As the web server binds: a port left in TIME_WAIT is free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = f"port {port} on {host} is taken: set FORESHOCK_WEB_PORT to a free port"
        else:
            why = f"cannot serve on {host}:{port} ({exc.strerror or exc}): set FORESHOCK_WEB_HOST"
        errors.print(f"[bold red]error:[/] {why}, or FORESHOCK_WEB_ENABLED=false", soft_wrap=True)
        raise typer.Exit(2) from None


def _maintenance_readable(settings: Settings) -> None:
    """Stop here on a maintenance calendar the worker could not use."""
    try:
        settings.load_maintenance(settings.load_topology())
    except (OSError, ValueError) as exc:
        why = escape(str(exc))
        errors.print(f"[bold red]error:[/] FORESHOCK_MAINTENANCE: {why}", soft_wrap=True)
        raise typer.Exit(2) from None


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
        removed = asyncio.run(remove_isolated(runs[0].kafka_client_options(), runs))
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


def _scenario(settings: Settings, name: str) -> Scenario:
    scenarios = load_scenarios(settings.scenarios)
    if name not in scenarios:
        raise typer.BadParameter(f"no scenario {name!r}; try: {', '.join(sorted(scenarios))}")
    return scenarios[name]


class Timeline:
    """Prints the story as it unfolds: the first anomaly of each component and
    metric, the first warning of each component, and every incident change."""

    def __init__(self, topology: Topology, origin: float | None) -> None:
        self.topology = topology
        self.origin = origin
        self._seen: set[tuple[str, str]] = set()

    def _row(self, at: float, kind: str, text: str, style: str = "") -> None:
        console.print(
            f"{_clock(at)} [dim]{_offset(at, self.origin):>12}[/dim]  "
            f"[{style or 'default'}]{kind:<12}[/] {text}",
            soft_wrap=True,
        )

    def emit(self, event: Event) -> None:
        if isinstance(event, Anomaly) and event.ended_at is None:
            node = self.topology.node_of[event.entity]
            if (node, event.metric) not in self._seen:
                self._seen.add((node, event.metric))
                self._row(
                    event.at,
                    "anomaly",
                    f"{node}: {event.metric} {event.direction} on {event.entity} "
                    f"({event.value:.4g} vs baseline {event.baseline:.4g})",
                    "yellow",
                )
        elif isinstance(event, ExhaustionWarning) and event.cleared_at is None:
            node = self.topology.node_of[event.entity]
            if (node, "exhaustion") not in self._seen:
                self._seen.add((node, "exhaustion"))
                self._row(
                    event.at,
                    "warning",
                    f"{node}: {event.metric} on {event.entity} at {event.value:.1%}, "
                    f"+{event.slope_per_min:.2%}/min, exhausted at ~{_clock(event.eta)} "
                    f"(in {(event.eta - event.at) / 60:.0f} min)",
                    "magenta",
                )
        elif isinstance(event, IncidentEvent):
            style = {
                "opened": "bold red",
                "escalated": "red",
                "resolved": "bold green",
                "recovering": "green",
            }.get(event.kind, "cyan")
            self._row(event.at, event.kind, event.text, style)
        elif isinstance(event, CreepWarning) and event.ended_at is None:
            node = self.topology.node_of[event.entity]
            if (node, "creep") not in self._seen:
                self._seen.add((node, "creep"))
                self._row(
                    event.at,
                    "creep",
                    f"{node}: {event.metric} drifting {event.direction} on {event.entity} "
                    f"since {_clock(event.onset)} ({event.value:.4g} vs {event.baseline:.4g})",
                    "magenta",
                )
        elif isinstance(event, TelemetryGap):
            node = self.topology.node_of[event.entity]
            ended = event.ended_at
            if (node, f"gap {ended is None}") not in self._seen:
                self._seen.add((node, f"gap {ended is None}"))
                if ended is not None:
                    self._row(ended, "gap ended", f"{node}: reports again", "dim")
                else:
                    text = f"{node}: silent since {_clock(event.start)}, health unknown"
                    self._row(event.at, "gap", text, "bold magenta")
        elif isinstance(event, LatePoints):
            self._row(event.at, "late", f"{event.points} late points from {event.entity}", "dim")


def _summary(result: Replay) -> None:
    truth = result.scenario.truth
    incidents = result.incidents
    if not incidents:
        console.print("\n[bold green]No incident.[/]")
    for inc in incidents:
        impact = inc["impact"]
        table = Table(title=f"Incident {inc['id']}", show_header=False, title_justify="left")
        table.add_row("SEV", f"SEV-{inc['sev']}: " + "; ".join(inc["sev_reasons"]))
        table.add_row("probable root cause", str(inc["root_cause"]))
        table.add_row("blast radius", ", ".join(inc["blast_radius"]))
        table.add_row(
            "opened",
            _clock(inc["opened_at"])
            + (
                f" ({inc['opened_at'] - truth.impact_start:.0f} s after user-visible impact)"
                if truth.impact_start
                else ""
            ),
        )
        resolved = inc["resolved_at"]
        table.add_row(
            "resolved",
            "still open"
            if resolved is None
            else f"{_clock(resolved)} (MTTR {inc['mttr_s'] / 60:.0f} min)",
        )
        table.add_row(
            "users affected",
            f"{impact['peak_users_affected']:,.0f} at the worst "
            f"({impact['peak_share']:.0%} of users), {impact['users_affected']:,.0f} now",
        )
        table.add_row(
            "revenue lost",
            f"${impact['revenue_usd_total']:,.0f} in total, "
            f"${impact['revenue_usd_per_min']:,.0f}/min now",
        )
        table.add_row("SLA credits", f"${impact['sla_credits_usd']:,.0f}")
        console.print(table)
    mttd = result.mttd()
    if truth.fault_start is not None:
        rows = Table(title="Detection", show_header=False, title_justify="left")
        for key, label in (
            ("from_fault_s", "MTTD from fault start"),
            ("from_impact_s", "MTTD from user-visible impact"),
            ("to_expected_sev_from_impact_s", f"SEV-{truth.sev} reached after impact"),
        ):
            value = mttd[key]
            rows.add_row(label, "not detected" if value is None else f"{value:.0f} s")
        if result.warnings:
            first = min(w.at for w in result.warnings)
            rows.add_row(
                "first exhaustion warning", f"{_clock(first)} ({_offset(first, truth.fault_start)})"
            )
        console.print(rows)
    s = result.stats
    console.print(
        f"[dim]{s.samples:,} samples, {s.series} series, {s.messages:,} messages in "
        f"{s.wall_s:.1f} s ({s.samples_per_s:,.0f} samples/s)"
        + (f"; rejected {dict(s.rejected)}" if s.rejected else "")
        + "[/dim]"
    )


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log what the engines do")
    ] = False,
) -> None:
    """Foreshock: names an outage while it is still a foreshock.

    Replays telemetry through online anomaly models, correlates anomalies over
    the service dependency graph, and reports incidents with SEV, probable root
    cause, blast radius, business impact and MTTD.
    """
    level = logging.INFO if verbose else Settings().log_level
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def scenarios() -> None:
    """List the scenarios."""
    settings = Settings()
    table = Table("name", "span (UTC)", "root cause", "SEV", "description")
    for sc in load_scenarios(settings.scenarios).values():
        begins = datetime.fromtimestamp(sc.start, UTC)
        span = f"{begins:%Y-%m-%d %H:%M} +{(sc.end - sc.start) / 3600:.1f} h"
        t = sc.truth
        table.add_row(
            sc.name, span, t.root_cause or "-", f"SEV-{t.sev}" if t.sev else "-", sc.description
        )
    console.print(table)


@app.command("replay")
def replay_command(
    scenario: ScenarioName,
    seed: Seed = 1,
    speed: Pace = Speed.max,
    json: Json = False,
    out: Annotated[
        Path | None, typer.Option(help="append incident events to this JSONL file")
    ] = None,
) -> None:
    """Replay a scenario through the detector and show the incident timeline."""
    settings = Settings()
    sc = _scenario(settings, scenario)
    topology, business = settings.load_topology(), settings.load_business()
    sinks: list[Sink] = []
    if not json:
        console.print(f"[bold]{sc.name}[/] (seed {seed}): {sc.description}")
        if sc.truth.fault_start is not None:
            console.print(f"[dim]T is the fault start, {_clock(sc.truth.fault_start)} UTC[/dim]")
        sinks.append(Timeline(topology, sc.truth.fault_start))
    jsonl = JsonlSink(out) if out else None
    if jsonl:
        sinks.append(jsonl)
    result = replay(
        sc,
        topology,
        business,
        seed=seed,
        speed=_speed(speed),
        sinks=sinks,
    )
    if jsonl:
        jsonl.close()
    if json:
        typer.echo(orjson.dumps(result.to_dict(topology)).decode())
    else:
        _summary(result)


def _speed(speed: Speed) -> float | None:
    return None if speed is Speed.max else float(speed.value)


@app.command()
def produce(
    scenario: ScenarioName,
    seed: Seed = 1,
    speed: Pace = Speed.max,
    json: Json = False,
) -> None:
    """Publish a scenario's telemetry to Kafka (FORESHOCK_KAFKA_BOOTSTRAP)."""
    settings = Settings()
    sc = _scenario(settings, scenario)
    topology, business = settings.load_topology(), settings.load_business()
    sim = Simulator(sc, topology, business, seed=seed)
    client = settings.kafka_client_options()
    topics = {family: settings.topic(t) for family, t in TELEMETRY_TOPICS.items()}
    _reach_broker(settings)
    if not json:
        console.print(
            f"publishing [bold]{sc.name}[/] (seed {seed}, {sim.series_count} series) "
            f"to {settings.kafka_bootstrap} at speed {speed.value}"
        )
    try:
        asyncio.run(ensure_topics(client, dict.fromkeys(topics.values(), settings.partitions)))
        stats = asyncio.run(publish(sim.messages(), client, topics, _speed(speed)))
    except KafkaError as exc:
        errors.print(f"[bold red]error:[/] Kafka refused or lost the telemetry: {exc!r}")
        raise typer.Exit(1) from None
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


@app.command()
def worker(
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="worker log level")] = "info",
) -> None:
    """Start a Faust worker: run more of them to share the partitions."""
    checked = Settings()
    _web_port_free(checked)
    _maintenance_readable(checked)
    from streams.app import TOPICS, settings  # the app reads its settings on import
    from streams.app import app as faust_app

    _reach_broker(settings)
    asyncio.run(ensure_topics(settings.kafka_client_options(), TOPICS))
    faust.Worker(faust_app, loglevel=loglevel).execute_from_commandline()


bench_app = typer.Typer(help="Benchmarks: figures and ratios, never pass/fail.")
app.add_typer(bench_app, name="bench")


@bench_app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    scenarios: Annotated[
        list[str] | None, typer.Option("--scenarios", help="scenario names (default: all)")
    ] = None,
    seeds: Annotated[int, typer.Option(help="seeds 1..N of each scenario")] = 5,
    jobs: Annotated[int, typer.Option(help="parallel processes (default: one per core)")] = 0,
    out: Annotated[Path, typer.Option(help="report.json, report.md and plots")] = Path("out/bench"),
) -> None:
    """MTTD benchmark: scenarios × seeds on the embedded engine, scored against their truth."""
    if ctx.invoked_subcommand is not None:
        return
    from bench.scenarios import progress_bar, render_tables, run_bench

    with progress_bar(console) as progress:
        report = run_bench(scenarios, seeds, jobs, out, progress)
    for renderable in render_tables(report):
        console.print(renderable)
    console.print(f"[dim]report.json, report.md and plots in {out}/[/dim]")


@bench_app.command("kafka")
def bench_kafka(
    scenario: Annotated[str, typer.Option(help="scenario to publish")] = "reference-2022-10-04",
    seed: Seed = 1,
    lag_speed: Annotated[
        float, typer.Option(help="pace of the lag run, × real time (below capacity)")
    ] = 50.0,
    lag_seconds: Annotated[float, typer.Option(help="wall seconds of the lag run")] = 60.0,
    workdir: Annotated[Path, typer.Option(help="where worker logs and data go")] = Path(
        "out/bench-kafka"
    ),
    json: Json = False,
    keep_topics: KeepTopics = False,
) -> None:
    """One worker on the broker (FORESHOCK_KAFKA_BOOTSTRAP): samples/s end to end,
    against a bare aiokafka consumer and a do-nothing Faust agent reading the same
    messages, and ingest-to-emission lag."""
    from bench.kafka import isolated, lag, throughput

    settings = Settings()
    sc = _scenario(settings, scenario)
    _reach_broker(settings)
    sim_args = (settings.load_topology(), settings.load_business(), seed)
    workdir.mkdir(parents=True, exist_ok=True)
    runs = [isolated(settings), isolated(settings)]  # throughput, lag
    try:
        with console.status("throughput: publishing, bare consumer, one worker…"):
            result = throughput(runs[0], sc, sim_args, workdir)
        with console.status(f"lag: publishing at ×{lag_speed:g} for {lag_seconds:g} s…"):
            result |= lag(runs[1], sc, sim_args, workdir, lag_speed, lag_seconds)
    finally:
        _clean_up(runs, keep_topics, json)
    if json:
        typer.echo(orjson.dumps(result).decode())
        return
    table = Table("figure", "value", title=f"bench kafka: {sc.name}, seed {seed}")
    table.add_row("samples", f"{result['samples']:,} in {result['messages']:,} messages")
    table.add_row("one worker, end to end", f"{result['samples_per_s']:,} samples/s")
    table.add_row("bare aiokafka consumer", f"{result['bare_consumer_samples_per_s']:,} samples/s")
    table.add_row("ratio worker / bare consumer", f"{result['ratio']:.3f}")
    table.add_row(
        "Faust agent doing nothing", f"{result['passthrough_agent_samples_per_s']:,} samples/s"
    )
    table.add_row("ratio worker / that agent", f"{result['ratio_to_passthrough_agent']:.3f}")
    table.add_row(
        "same models, same bytes, no Kafka", f"{result['embedded_samples_per_s']:,} samples/s"
    )
    table.add_row(
        "ratio of those / bare consumer", f"{result['ratio_embedded_to_bare_consumer']:.3f}"
    )
    table.add_row(
        f"lag at ×{lag_speed:g} ({result['lag_samples_per_s']:,} samples/s)",
        f"p50 {result['lag_p50_ms']:,.0f} ms, p99 {result['lag_p99_ms']:,.0f} ms "
        f"over {result['lag_windows']:,} windows",
    )
    console.print(table)


@bench_app.command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(help="length of the run")] = 20.0,
    rate: Annotated[float, typer.Option(help="samples/s published, steady")] = 20_000.0,
    scenario: Annotated[str, typer.Option(help="scenario to publish")] = "baseline-24h",
    seed: Seed = 1,
    every: Annotated[float, typer.Option(help="seconds between rows")] = 60.0,
    workdir: Annotated[Path, typer.Option(help="where the worker's log goes")] = Path(
        "out/bench-soak"
    ),
    json: Json = False,
    keep_topics: KeepTopics = False,
) -> None:
    """One worker under a steady rate into the local broker: consumer lag and the
    worker's resident memory every minute, and the trend of each."""
    from bench.kafka import isolated
    from bench.soak import Row, loopback_only, soak

    settings = Settings()
    sc = _scenario(settings, scenario)
    try:
        loopback_only(settings.kafka_bootstrap)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    _reach_broker(settings)
    sim_args = (settings.load_topology(), settings.load_business(), seed)
    workdir.mkdir(parents=True, exist_ok=True)

    def show(row: Row) -> None:
        if json:
            return
        lag_s = (
            "-"
            if row.lag_p50_s is None
            else f"p50 {row.lag_p50_s:.2f} s, max {row.lag_max_s:.2f} s"
        )
        console.print(
            f"minute {row.minute:>3}  {row.samples_per_s:>9,.0f} samples/s  "
            f"lag {row.lag_messages:>7,} messages, {lag_s} over {row.windows:,} windows  "
            f"RSS {row.rss_mb:,.1f} MB"
        )

    run = isolated(settings, f"soak{int(time.time())}")
    try:
        result = soak(run, sc, sim_args, workdir, minutes, rate, show, every)
    except ValueError as exc:  # a remote broker, or a run longer than the scenario
        raise typer.BadParameter(str(exc)) from exc
    finally:
        _clean_up([run], keep_topics, json)
    if json:
        typer.echo(orjson.dumps(result).decode())
        return
    table = Table("figure", "first", "last", "slope per minute", title="bench soak: trends")
    for key, label in (
        ("lag_messages", "lag, messages"),
        ("lag_p50_s", "lag p50, s"),
        ("rss_mb", "worker RSS, MB"),
    ):
        t = result["trend"][key]
        table.add_row(label, *(str(t[k]) for k in ("first", "last", "slope_per_min")))
    console.print(table)


@app.command()
def nab(
    data: Annotated[Path, typer.Option(help="a NAB data folder (<folder>/<series>.csv)")],
    labels: Annotated[Path, typer.Option(help="NAB's combined_windows.json")],
    out: Annotated[Path, typer.Option(help="results folder, in NAB's layout")] = Path("out/nab"),
    json: Json = False,
) -> None:
    """Score Foreshock's per-series detector on a NAB corpus (NAB's rules and profiles)."""
    from bench import nab as nabench

    corpus = nabench.load_corpus(data, labels)
    result = nabench.run(corpus, nabench.SurpriseScorer)
    nabench.write_results(out, corpus, result.scores)
    scores = nabench.score_corpus(corpus, result.scores)
    summary: dict[str, float | int] = {name: round(r.score, 2) for name, r in scores.items()}
    summary |= {"points": result.points, "points_per_s": round(result.points_per_second)}
    river = nabench.score_corpus(corpus, nabench.run(corpus, nabench.RiverBaseline).scores)
    summary |= {f"river_sad_{name}": round(r.score, 2) for name, r in river.items()}
    if json:
        typer.echo(orjson.dumps(summary).decode())
        return
    table = Table(
        "profile",
        "score",
        "threshold",
        "River SAD (defaults)",
        title=f"NAB: {len(corpus)} series",
    )
    for name, r in scores.items():
        table.add_row(name, f"{r.score:.1f}", f"{r.threshold:.4f}", f"{river[name].score:.1f}")
    console.print(table)
    console.print(
        f"{result.points:,} points at {result.points_per_second:,.0f} points/s; "
        f"results in {out}/foreshock/"
    )

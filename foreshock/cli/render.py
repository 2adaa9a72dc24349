"""What the commands print: the live timeline of a replay and the tables."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from bench.detection import pages_of
from models.detect import Anomaly
from models.gaps import TelemetryGap
from models.incident import Change, Incident, IncidentEvent
from models.pipeline import Event
from models.report import LatePoints
from models.topology import Topology
from models.trend import CreepWarning, ExhaustionWarning
from producers.scenario import Scenario, Truth
from streams.sinks import Sink

if TYPE_CHECKING:  # the benchmarks load only when run
    from bench.nab import CrossValidation, ProfileResult, Run
    from bench.replay import Replay
    from bench.scenarios import Progress as BenchProgress
    from bench.soak import Row


def clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def offset(t: float, origin: float | None) -> str:
    """``t`` as T±…, relative to ``origin`` (the fault start)."""
    if origin is None:
        return ""
    d = round(t - origin)
    sign = "+" if d >= 0 else "-"
    m, s = divmod(abs(d), 60)
    h, m = divmod(m, 60)
    return f"T{sign}{h}h{m:02d}m{s:02d}s" if h else f"T{sign}{m}m{s:02d}s"


_CHANGE_STYLE = {
    Change.OPENED: "bold red",
    Change.ESCALATED: "red",
    Change.RESOLVED: "bold green",
    Change.MERGED: "green",
    Change.RECOVERING: "green",
}


class Timeline(Sink):
    """Prints the story as it unfolds: the first anomaly of each component and
    metric, the first warning of each component, and every incident change."""

    def __init__(self, console: Console, topology: Topology, origin: float | None) -> None:
        self.console = console
        self.topology = topology
        self.origin = origin
        self._seen: set[tuple[str, str]] = set()

    def _row(self, at: float, kind: str, text: str, style: str = "") -> None:
        when = f"{clock(at)} [dim]{offset(at, self.origin):>12}[/dim]"
        self.console.print(_row(when, kind, text, style), soft_wrap=True)

    def emit(self, event: Event) -> None:
        if isinstance(event, IncidentEvent):
            self._row(event.at, event.kind, event.text, _CHANGE_STYLE.get(event.kind, "cyan"))
        elif isinstance(event, LatePoints):
            self._row(event.at, "late", f"{event.points} late points from {event.entity}", "dim")
        elif (news := _news(event)) is not None:
            entity, what, at, label, text, style = news
            node = self.topology.node_of[entity]
            if (node, what) not in self._seen:  # once per component and signal
                self._seen.add((node, what))
                self._row(at, label, f"{node}: {text}", style)


def _row(when: str, kind: str, text: str, style: str = "") -> str:
    return f"{when}  [{style or 'default'}]{kind:<12}[/] {text}"


def incident_change(body: Mapping[str, Any]) -> str:
    """One change of an incident as ``foreshock.incidents`` carries it
    (``streams.sinks.wire``), as a replay's timeline shows it, dated in full;
    the incident and its SEV named once, where the change's own text names them.

    >>> change = {"at": 0.0, "kind": "opened", "id": "INC-1", "sev": 4}
    >>> incident_change(change | {"text": "INC-1 SEV-4: db failing"}).count("INC-1")
    1
    >>> "INC-1 SEV-2: login" in incident_change(
    ...     change | {"kind": "escalated", "sev": 2, "text": "SEV-2: login"})
    True
    >>> "INC-1 SEV-4: blast radius" in incident_change(
    ...     change | {"kind": "blast_radius", "text": "blast radius now includes lb"})
    True
    """
    at = datetime.fromtimestamp(float(body["at"]), UTC).strftime("%Y-%m-%d %H:%M:%S")
    kind = Change(body["kind"])
    iid, sev, said = body["id"], f"SEV-{body['sev']}", str(body["text"])
    if said.startswith(f"{iid} "):
        named = said
    elif said.startswith(f"{sev}:"):
        named = f"{iid} {said}"
    else:
        named = f"{iid} {sev}: {said}"
    return _row(at, kind, escape(named), _CHANGE_STYLE.get(kind, "cyan"))


def _news(event: Event) -> tuple[str, str, float, str, str, str] | None:
    """(entity, what, at, label, text, style) of an event the timeline shows
    the first time a component shows it; None for the others."""
    if isinstance(event, Anomaly) and event.ended_at is None:
        text = (
            f"{event.metric} {event.direction} on {event.entity} "
            f"({event.value:.4g} vs baseline {event.baseline:.4g})"
        )
        return event.entity, event.metric, event.at, "anomaly", text, "yellow"
    if isinstance(event, ExhaustionWarning) and event.cleared_at is None:
        text = (
            f"{event.metric} on {event.entity} at {event.value:.1%}, "
            f"+{event.slope_per_min:.2%}/min, exhausted at ~{clock(event.eta)} "
            f"(in {(event.eta - event.at) / 60:.0f} min)"
        )
        return event.entity, "exhaustion", event.at, "warning", text, "magenta"
    if isinstance(event, CreepWarning) and event.ended_at is None:
        text = (
            f"{event.metric} drifting {event.direction} on {event.entity} "
            f"since {clock(event.onset)} ({event.value:.4g} vs {event.baseline:.4g})"
        )
        return event.entity, "creep", event.at, "creep", text, "magenta"
    if isinstance(event, TelemetryGap):
        if event.ended_at is not None:
            return event.entity, "gap ended", event.ended_at, "gap ended", "reports again", "dim"
        text = f"silent since {clock(event.start)}, health unknown"
        return event.entity, "gap", event.at, "gap", text, "bold magenta"
    return None


def incident_table(inc: Incident, truth: Truth) -> Table:
    impact = inc.impact
    table = Table(title=f"Incident {inc.id}", show_header=False, title_justify="left")
    table.add_row("SEV", f"SEV-{inc.sev}: " + "; ".join(inc.sev_reasons))
    region = f" in {inc.root_region}" if inc.root_region else ""
    table.add_row("probable root cause", f"{inc.root_cause}{region}")
    table.add_row("blast radius", ", ".join(inc.blast_radius))
    after = (
        f" ({inc.opened_at - truth.impact_start:.0f} s after user-visible impact)"
        if truth.impact_start
        else ""
    )
    table.add_row("opened", clock(inc.opened_at) + after)
    mttr = inc.mttr_s
    table.add_row(
        "resolved",
        "still open"
        if inc.resolved_at is None or mttr is None
        else f"{clock(inc.resolved_at)} (MTTR {mttr / 60:.0f} min)",
    )
    table.add_row(
        "users affected",
        f"{impact.peak_users_affected:,.0f} at the worst "
        f"({impact.peak_share:.0%} of users), {impact.users_affected:,.0f} now",
    )
    table.add_row(
        "revenue lost",
        f"${impact.revenue_usd_total:,.0f} in total, ${impact.revenue_usd_per_min:,.0f}/min now",
    )
    table.add_row("SLA credits", f"${impact.sla_credits_usd:,.0f}")
    return table


def replay_summary(result: Replay) -> list[RenderableType]:
    """After a replay: each incident, the detection times, and the run's figures."""
    truth, truths = result.scenario.truth, result.scenario.truths
    # Each incident timed against its own fault, where a scenario has several.
    pages = zip(truths, pages_of(result.incidents, truths), strict=True)
    fault_of = {page.id: fault for fault, page in pages if page is not None}
    out: list[RenderableType] = [
        incident_table(inc, fault_of.get(inc.id, truth)) for inc in result.incidents
    ]
    if not out:
        out.append("\n[bold green]No incident.[/]")
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
                "first exhaustion warning", f"{clock(first)} ({offset(first, truth.fault_start)})"
            )
        out.append(rows)
    s = result.stats
    out.append(
        f"[dim]{s.samples:,} samples, {s.series} series, {s.messages:,} messages in "
        f"{s.wall_s:.1f} s ({s.samples_per_s:,.0f} samples/s)"
        + (f"; rejected {dict(s.rejected)}" if s.rejected else "")
        + "[/dim]"
    )
    return out


def scenarios_table(scenarios: Mapping[str, Scenario]) -> Table:
    table = Table("name", "span (UTC)", "root cause", "SEV", "description")
    for sc in scenarios.values():
        begins = datetime.fromtimestamp(sc.start, UTC)
        span = f"{begins:%Y-%m-%d %H:%M} +{(sc.end - sc.start) / 3600:.1f} h"
        t = sc.truth
        causes = " or ".join(t.root_causes) or "-"
        sevs = " → ".join(f"SEV-{s}" for s in t.sev_path) or "-"
        table.add_row(sc.name, span, causes, sevs, sc.description)
    return table


@contextmanager
def progress_bar(console: Console) -> Iterator[BenchProgress]:
    """A rich progress bar, as a ``progress`` callback for the scenario benchmark."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("replaying", total=None)

        def advance(done: int, total: int, name: str, seed: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{name} seed {seed}")

        yield advance


def kafka_table(result: Mapping[str, Any], title: str, lag_speed: float) -> Table:
    """``bench kafka``: throughput against its baselines, and lag."""
    table = Table("figure", "value", title=title)
    table.add_row("samples", f"{result['samples']:,} in {result['messages']:,} messages")
    workers = result["workers"]
    group = "one worker" if workers == 1 else f"{workers} workers, in total"
    table.add_row(
        f"{group}, end to end ({result['partitions']} partitions)",
        f"{result['samples_per_s']:,} samples/s",
    )
    table.add_row("bare aiokafka consumer", f"{result['bare_consumer_samples_per_s']:,} samples/s")
    table.add_row(f"ratio {group} / bare consumer", f"{result['ratio']:.3f}")
    table.add_row(
        "Faust agent doing nothing", f"{result['passthrough_agent_samples_per_s']:,} samples/s"
    )
    table.add_row(f"ratio {group} / that agent", f"{result['ratio_to_passthrough_agent']:.3f}")
    table.add_row(
        "same models, same bytes, no Kafka", f"{result['embedded_samples_per_s']:,} samples/s"
    )
    table.add_row(
        "ratio of those / bare consumer", f"{result['ratio_embedded_to_bare_consumer']:.3f}"
    )
    table.add_row(f"ratio {group} / those", f"{result['ratio_to_embedded']:.3f}")
    table.add_row(
        "window reports to the correlator",
        f"{result['reports']:,} ({result['reports_per_s']:,.0f}/s in this run)",
    )
    table.add_row(
        "one correlator's ceiling, in process", f"{result['correlator_reports_per_s']:,} reports/s"
    )
    table.add_row(
        f"lag at ×{lag_speed:g} ({result['lag_samples_per_s']:,} samples/s)",
        f"p50 {result['lag_p50_ms']:,.0f} ms, p99 {result['lag_p99_ms']:,.0f} ms "
        f"over {result['lag_windows']:,} windows",
    )
    return table


def ingest_table(result: Mapping[str, Any]) -> Table:
    """``bench ingest``: what the receiver took, how fast, at what cost."""
    table = Table(title="bench ingest: remote_write into Kafka", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    r = result
    table.add_row("bodies taken", f"{r['taken']:,} of {r['requests']:,}")
    table.add_row(
        "samples per body", f"{r['samples_per_request']:,} ({r['body_bytes_mean']:,} bytes)"
    )
    table.add_row("senders at once", f"{r['concurrency']}")
    table.add_row("samples taken per second", f"{r['samples_per_s']:,}")
    per_cpu = r["samples_per_cpu_s"]
    table.add_row("per CPU-second of the receiver", f"{per_cpu:,}" if per_cpu else "n/a")
    table.add_row("request latency p50 / p99", f"{r['latency_p50_ms']} / {r['latency_p99_ms']} ms")
    table.add_row("telemetry samples published", f"{r['published_samples']:,.0f}")
    return table


def memory_table(result: Mapping[str, Any]) -> Table:
    """``bench memory``: state per series, at two sizes and at the margin, and
    the snapshot as a worker stores it."""
    table = Table(
        "series",
        "windows",
        "snapshot",
        "per series",
        "RSS growth",
        "per series",
        "records (largest)",
        "write / restore",
        "rewritten",
        "wall",
        title="bench memory: model state per series",
    )
    for run in result["runs"]:
        table.add_row(
            f"{run['series']:,}",
            str(run["windows"]),
            f"{run['snapshot_bytes'] / 1e6:,.1f} MB",
            f"{run['snapshot_per_series']:,} B",
            f"{run['rss_growth_bytes'] / 1e6:,.1f} MB",
            f"{run['rss_per_series']:,} B",
            f"{run['records']:,} ({run['largest_record'] / 1e3:,.0f} kB)",
            f"{run['write_s']:.1f} / {run['restore_s']:.1f} s",
            f"{run['rewritten_records']:,} ({run['rewritten_bytes'] / run['snapshot_bytes']:.0%})",
            f"{run['wall_s']:.1f} s",
        )
    table.caption = (
        f"resident memory per series added: {result['rss_marginal_per_series']:,} B; "
        "rewritten: what the next snapshot writes after a window only a hundredth "
        "of the pods reported in"
    )
    return table


def soak_trends_table(result: Mapping[str, Any]) -> Table:
    """``bench soak``: first, last and slope of each figure."""
    table = Table("figure", "first", "last", "slope per minute", title="bench soak: trends")
    for key, label in (
        ("lag_messages", "lag, messages"),
        ("lag_p50_s", "lag p50, s"),
        ("rss_mb", "worker RSS, MB"),
    ):
        t = result["trend"][key]
        table.add_row(label, *(str(t[k]) for k in ("first", "last", "slope_per_min")))
    return table


def soak_row(row: Row) -> str:
    """``bench soak``: one minute of the run."""
    lag_s = (
        "-" if row.lag_p50_s is None else f"p50 {row.lag_p50_s:.2f} s, max {row.lag_max_s:.2f} s"
    )
    return (
        f"minute {row.minute:>3}  {row.samples_per_s:>9,.0f} samples/s  "
        f"lag {row.lag_messages:>7,} messages, {lag_s} over {row.windows:,} windows  "
        f"RSS {row.rss_mb:,.1f} MB"
    )


def nab_table(
    scores: Mapping[str, ProfileResult], river: Mapping[str, ProfileResult], series: int
) -> Table:
    """``bench nab``: the score of each profile, beside River's default detector's."""
    table = Table(
        "profile", "score", "threshold", "River SAD (defaults)", title=f"NAB: {series} series"
    )
    for name, r in scores.items():
        table.add_row(name, f"{r.score:.1f}", f"{r.threshold:.4f}", f"{river[name].score:.1f}")
    return table


def nab_cv_table(cv: CrossValidation, series: int) -> Table:
    """``bench nab --cv``: each folder scored with the setting and threshold
    tuned on the others; the held-out mean and spread in the caption."""
    table = Table(
        "left out",
        "series",
        "windows",
        "alert, quiet at, days, damp",
        "threshold",
        f"others ({cv.profile})",
        "held out",
        "false alarms",
        title=f"NAB leave-one-folder-out: {series} series",
        caption=(
            "each folder scored with the scorer's setting and threshold that did best on the "
            f"others; held-out mean {cv.mean:.1f}, sd {cv.spread:.1f}, over the "
            f"{len(cv.scored)} folders with windows (min {min(cv.scored, default=0):.1f}, "
            f"max {max(cv.scored, default=0):.1f})"
        ),
    )
    table.columns[0].no_wrap = True
    for f in cv.folds:
        table.add_row(
            f.folder,
            str(f.series),
            str(f.windows),
            ", ".join(f"{v:g}" for v in f.settings.values()),
            f"{f.threshold:.4f}",
            f"{f.train:.1f}",
            "–" if f.held_out is None else f"{f.held_out:.1f}",
            str(f.false_alarms),
        )
    return table


def nab_compare_table(
    scored: Mapping[str, Mapping[str, ProfileResult]], runs: Mapping[str, Run], series: int
) -> Table:
    """``bench nab --compare``: detectors scored in one run, best standard score first."""
    table = Table(
        "detector", "standard", "low FP", "low FN", "points/s", title=f"NAB: {series} series"
    )
    for name in sorted(scored, key=lambda n: -scored[n]["standard"].score):
        r = scored[name]
        table.add_row(
            name,
            f"{r['standard'].score:.1f}",
            f"{r['reward_low_FP_rate'].score:.1f}",
            f"{r['reward_low_FN_rate'].score:.1f}",
            f"{runs[name].points_per_second:,.0f}",
        )
    return table

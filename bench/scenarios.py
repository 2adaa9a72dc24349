"""The MTTD benchmark: every scenario of the library, seed by seed, on the
embedded engine, scored against the scenario's truth.

For each scenario it reports MTTD from fault start and from impact start
(median, p90, max over seeds), time to root cause, whether the SEV and the
root cause were right, false pages per simulated day, the impact estimate's
error, and whether a telemetry gap was reported; then paging precision and
recall over the whole run. It writes ``report.json``, ``report.md``, a
timeline plot per scenario and the MTTD distribution into an output folder.

What counts:

- a fault expected to page is detected by the first incident opened at or
  after its fault start; every other incident is a false page;
- a fault expected to warn only (``expect = "warning"``) is detected by the
  first exhaustion or creep warning on its root cause after fault start; any
  incident is a false page;
- decoys and monitoring gaps must not page: every incident is a false page;
  a gap scenario is right when a telemetry gap is reported on an affected
  component within ``GAP_TOLERANCE_S`` of the truth's start.

The library logs nothing and prints nothing: ``render_tables`` and
``progress_bar`` are for the CLI.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from foreshock.settings import Settings
from models.impact import Business
from models.incident import IncidentEvent
from models.schema import Telemetry
from models.topology import Topology
from producers.scenario import Scenario, load_scenarios
from streams.replay import Replay, replay

Progress = Callable[[int, int, str, int], None]  # (done, total, scenario, seed)

GAP_TOLERANCE_S = 120.0
MAX_SIGNALS = 4
# How a simulator parameter shows on the wire: (wire metric, divided by this wire metric).
_WIRE_OF_PARAM: dict[str, tuple[str, str | None]] = {
    "success_ratio": ("successes", "attempts"),
    "timeout_share": ("timeouts", "attempts"),
    "attempt_rate": ("attempts", None),
    "mention_rate": ("mentions", None),
    "outage_share": ("mentions", None),
}


@cache
def _world() -> tuple[Topology, Business, dict[str, Scenario]]:
    settings = Settings()
    return settings.load_topology(), settings.load_business(), load_scenarios(settings.scenarios)


def key_signals(scenario: Scenario, topology: Topology) -> list[tuple[str, str, str | None]]:
    """The series worth plotting for a scenario: (entity, wire metric, divisor).

    The first entity each effect or silence hits, with the metric it changes;
    for a scenario without any, the user-facing login and access signals.
    """
    import fnmatch

    entities = sorted(topology.node_of)
    wanted: list[tuple[str, str, str | None]] = []
    for effect in scenario.effects:
        hit = next((e for e in entities if fnmatch.fnmatchcase(e, effect.target)), None)
        if hit is None:
            continue
        metric, per = _WIRE_OF_PARAM.get(effect.param, (effect.param, None))
        if (hit, metric, per) not in wanted and all(m != metric for _, m, _ in wanted):
            wanted.append((hit, metric, per))
    for gap in scenario.gaps:
        hit = next((e for e in entities if fnmatch.fnmatchcase(e, gap.target)), None)
        if hit is not None:
            wanted.insert(0, (hit, "error_rate", None))
    if not wanted:
        wanted = [
            ("logins/us-east/mobile", "successes", "attempts"),
            ("lb/us-east", "error_rate", None),
        ]
    return wanted[:MAX_SIGNALS]


class SignalTap:
    """Records 10 s means of a few series from the messages as delivered."""

    def __init__(self, signals: list[tuple[str, str, str | None]], bucket_s: float = 10.0) -> None:
        self.signals = signals
        self.bucket_s = bucket_s
        self._by_entity: dict[str, list[int]] = defaultdict(list)
        for i, (entity, _, _) in enumerate(signals):
            self._by_entity[entity].append(i)
        # signal -> bucket -> [sum, sum of divisor or count]
        self._sums: list[dict[float, list[float]]] = [
            defaultdict(lambda: [0.0, 0.0]) for _ in signals
        ]

    def __call__(self, msg: Telemetry) -> None:
        for i in self._by_entity.get(msg.entity, ()):
            _, metric, per = self.signals[i]
            sums = self._sums[i]
            if metric == "mentions":
                for t in msg.ts:
                    sums[t - t % self.bucket_s][0] += 1 / self.bucket_s
                    sums[t - t % self.bucket_s][1] = 1.0
                continue
            col = msg.metrics.get(metric)
            if col is None:
                continue
            den = msg.metrics.get(per) if per else None
            for j, t in enumerate(msg.ts):
                acc = sums[t - t % self.bucket_s]
                acc[0] += col[j]
                acc[1] += den[j] if den is not None else 1.0

    def series(self) -> list[dict[str, Any]]:
        out = []
        for (entity, metric, per), sums in zip(self.signals, self._sums, strict=True):
            points = sorted((t, s / n) for t, (s, n) in sums.items() if n > 0)
            label = f"{entity} {metric}" + (f"/{per}" if per else "")
            out.append({"label": label, "t": [p[0] for p in points], "v": [p[1] for p in points]})
        return out


def evaluate(result: Replay, topology: Topology) -> dict[str, Any]:
    """Score one replay against its scenario's truth."""
    sc = result.scenario
    truth = sc.truth
    incidents = result.incidents
    fault = truth.fault_start
    gaps = result.telemetry_gaps(topology)
    out: dict[str, Any] = {
        "scenario": sc.name,
        "seed": result.seed,
        "kind": truth.kind,
        "expect": truth.expect,
        "days": (sc.end - sc.start) / 86_400,
        "pages": len(incidents),
        "detected": None,
        "true_page": False,
        "false_pages": len(incidents),
        "mttd_from_fault_s": None,
        "mttd_from_impact_s": None,
        "root_cause_after_s": None,
        "sev": None,
        "sev_correct": None,
        "root_cause": None,
        "root_cause_correct": None,
        "impact_share": None,
        "impact_error": None,
        "gaps": gaps,
        "gap_reported": bool(gaps),
        "late_points": result.stats.late_points,
        "rejected": dict(result.stats.rejected),
        "incidents": [
            {
                k: i[k]
                for k in ("id", "opened_at", "sev", "root_cause", "blast_radius", "resolved_at")
            }
            for i in incidents
        ],
        "warnings": sorted([w.at for w in result.warnings] + [c.at for c in result.creeps]),
        "wall_s": round(result.stats.wall_s, 2),
    }

    def since(t: float | None, origin: float | None) -> float | None:
        return None if t is None or origin is None else round(t - origin, 3)

    if truth.expect == "page":
        page = next((i for i in incidents if fault is None or i["opened_at"] >= fault), None)
        out["detected"] = page is not None
        out["sev_correct"] = out["root_cause_correct"] = False
        if page is not None:
            out["true_page"] = True
            out["false_pages"] = len(incidents) - 1
            out["mttd_from_fault_s"] = since(page["opened_at"], fault)
            out["mttd_from_impact_s"] = since(page["opened_at"], truth.impact_start)
            out["sev"] = page["sev"]
            out["sev_correct"] = page["sev"] == truth.sev
            out["root_cause"] = page["root_cause"]
            out["root_cause_correct"] = page["root_cause"] == truth.root_cause
            named = next(
                (
                    e.at
                    for e in result.events
                    if isinstance(e, IncidentEvent)
                    and e.incident["id"] == page["id"]
                    and e.incident["root_cause"] == truth.root_cause
                ),
                None,
            )
            out["root_cause_after_s"] = since(named, fault)
            share = page["impact"]["peak_share"]
            out["impact_share"] = share
            if truth.impact_share:
                out["impact_error"] = round(abs(share - truth.impact_share) / truth.impact_share, 4)
    elif truth.expect == "warning":
        raised = [(w.at, w.entity) for w in result.warnings]
        raised += [(c.at, c.entity) for c in result.creeps]
        warned = sorted(
            (at, topology.node_of[entity]) for at, entity in raised if fault is None or at >= fault
        )
        first = warned[0] if warned else None
        out["detected"] = first is not None
        out["mttd_from_fault_s"] = since(first[0], fault) if first else None
        out["root_cause"] = first[1] if first else None
        out["root_cause_correct"] = first is not None and first[1] == truth.root_cause
        out["root_cause_after_s"] = out["mttd_from_fault_s"] if out["root_cause_correct"] else None
    elif truth.expect == "gap":
        right = [
            g
            for g in gaps
            if g["component"] in truth.affected
            and fault is not None
            and abs(g["start"] - fault) <= GAP_TOLERANCE_S
        ]
        out["detected"] = out["gap_reported"] = bool(right)
        if right:
            out["mttd_from_fault_s"] = since(min(g["at"] for g in right), fault)
    return out


def _quiet_worker() -> None:
    # Rejections are counted in the report; one log line each would drown the progress bar.
    logging.getLogger("streams.embedded").setLevel(logging.ERROR)


def run_one(name: str, seed: int, signals: bool = False) -> dict[str, Any]:
    """Replay one scenario with one seed and score it (runs in a worker process)."""
    topology, business, scenarios = _world()
    scenario = scenarios[name]
    tap = SignalTap(key_signals(scenario, topology)) if signals else None
    result = replay(scenario, topology, business, seed=seed, tap=tap)
    scored = evaluate(result, topology)
    if tap is not None:
        scored["signals"] = tap.series()
    return scored


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None, "max": None}
    arr = np.asarray(values, dtype=float)
    return {
        "median": round(float(np.median(arr)), 1),
        "p90": round(float(np.percentile(arr, 90)), 1),
        "max": round(float(arr.max()), 1),
    }


def _fraction(flags: list[bool | None]) -> float | None:
    known = [f for f in flags if f is not None]
    return round(sum(known) / len(known), 3) if known else None


def summarize(runs: list[dict[str, Any]], scenarios: dict[str, Scenario]) -> dict[str, Any]:
    """Per-scenario tables and overall precision and recall from scored runs."""
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_name[run["scenario"]].append(run)
    rows = []
    for name in sorted(by_name, key=lambda n: (scenarios[n].truth.kind, n)):
        rs = sorted(by_name[name], key=lambda r: r["seed"])
        sc = scenarios[name]
        days = sum(r["days"] for r in rs)
        false_pages = sum(r["false_pages"] for r in rs)

        def values(key: str, rs: list[dict[str, Any]] = rs) -> list[float]:
            return [r[key] for r in rs if r[key] is not None]

        impact_errors = values("impact_error")
        rows.append(
            {
                "name": name,
                "kind": sc.truth.kind,
                "expect": sc.truth.expect,
                "seeds": len(rs),
                "truth": {
                    "sev": sc.truth.sev,
                    "root_cause": sc.truth.root_cause,
                    "impact_share": sc.truth.impact_share,
                },
                "detected": _fraction([r["detected"] for r in rs]),
                "mttd_from_fault_s": _stats(values("mttd_from_fault_s")),
                "mttd_from_impact_s": _stats(values("mttd_from_impact_s")),
                "time_to_root_cause_s": _stats(values("root_cause_after_s")),
                "sev_correct": _fraction([r["sev_correct"] for r in rs]),
                "root_cause_correct": _fraction([r["root_cause_correct"] for r in rs]),
                "pages": sum(r["pages"] for r in rs),
                "false_pages": false_pages,
                "false_pages_per_day": round(false_pages / days, 3) if days else None,
                "impact_error": round(float(np.median(impact_errors)), 3)
                if impact_errors
                else None,
                "gap_reported": _fraction([r["gap_reported"] for r in rs]),
                "late_points": sum(r["late_points"] for r in rs),
                "runs": [{k: v for k, v in r.items() if k != "signals"} for r in rs],
            }
        )
    pages = sum(r["pages"] for r in runs)
    true_pages = sum(r["true_page"] for r in runs)
    expected = [r for r in runs if r["expect"] == "page"]
    return {
        "scenarios": rows,
        "runs": len(runs),
        "pages": pages,
        "true_pages": true_pages,
        "false_pages": pages - true_pages,
        "precision": round(true_pages / pages, 4) if pages else None,
        "recall": round(sum(bool(r["detected"]) for r in expected) / len(expected), 4)
        if expected
        else None,
    }


def run_bench(
    names: list[str] | None,
    seeds: int,
    jobs: int,
    out: Path,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run ``names`` (default: the whole library) × seeds 1..``seeds`` in
    ``jobs`` processes; write the report and plots into ``out``; return the
    report as written to ``report.json``."""
    _, _, scenarios = _world()
    chosen = names if names else list(scenarios)
    unknown = [n for n in chosen if n not in scenarios]
    if unknown:
        raise KeyError(f"unknown scenarios: {', '.join(unknown)}")
    # Longest first, so that the pool is not left waiting on one long run.
    tasks = sorted(
        ((n, s) for n in chosen for s in range(1, seeds + 1)),
        key=lambda t: -(scenarios[t[0]].end - scenarios[t[0]].start),
    )
    runs: list[dict[str, Any]] = []
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    with ProcessPoolExecutor(max_workers=jobs, initializer=_quiet_worker) as pool:
        futures = {pool.submit(run_one, n, s, s == 1): (n, s) for n, s in tasks}
        for done, future in enumerate(as_completed(futures), 1):
            runs.append(future.result())
            if progress is not None:
                name, seed = futures[future]
                progress(done, len(tasks), name, seed)
    report = summarize(runs, scenarios)
    report["seeds"] = seeds
    out.mkdir(parents=True, exist_ok=True)
    signals = {r["scenario"]: r["signals"] for r in runs if "signals" in r}
    report["plots"] = write_plots(report, runs, signals, scenarios, out)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    (out / "report.md").write_text(render_markdown(report))
    return report


def _json_default(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not serialisable: {value!r}")


# --- presentation ----------------------------------------------------------------


def _s(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} s" if abs(value) < 600 else f"{value / 60:.0f} min"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


COLUMNS = (
    "scenario",
    "kind",
    "expect",
    "seeds",
    "detected",
    "MTTD fault (med/p90/max)",
    "MTTD impact (med/p90/max)",
    "root cause after (med)",
    "SEV ok",
    "root cause ok",
    "pages",
    "false pages/day",
    "impact err",
    "gap reported",
)


def rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row of strings per scenario, in ``COLUMNS`` order."""
    out: list[tuple[str, ...]] = []
    for r in report["scenarios"]:
        f, i = r["mttd_from_fault_s"], r["mttd_from_impact_s"]
        out.append(
            (
                r["name"],
                r["kind"],
                r["expect"],
                str(r["seeds"]),
                _pct(r["detected"]),
                f"{_s(f['median'])} / {_s(f['p90'])} / {_s(f['max'])}",
                f"{_s(i['median'])} / {_s(i['p90'])} / {_s(i['max'])}",
                _s(r["time_to_root_cause_s"]["median"]),
                _pct(r["sev_correct"]),
                _pct(r["root_cause_correct"]),
                str(r["pages"]),
                f"{r['false_pages_per_day']:.2f}",
                _pct(r["impact_error"]),
                _pct(r["gap_reported"]),
            )
        )
    return out


def _overall(report: dict[str, Any]) -> str:
    return (
        f"{report['runs']} runs, {report['pages']} pages, {report['false_pages']} false: "
        f"paging precision {_pct(report['precision'])}, recall {_pct(report['recall'])}"
    )


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Foreshock scenario benchmark",
        "",
        f"{len(report['scenarios'])} scenarios × {report.get('seeds', '?')} seeds, "
        "embedded engine, event time.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(report)]
    lines += ["", _overall(report), ""]
    for name, path in sorted(report.get("plots", {}).items()):
        lines.append(f"![{name}]({Path(path).name})")
    return "\n".join(lines) + "\n"


def render_tables(report: dict[str, Any]) -> list[Any]:
    """The report as rich renderables: the per-scenario table and the totals."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Scenario benchmark", title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("scenario", "kind", "expect") else "right")
    for row in rows(report):
        table.add_row(*row)
    return [table, Text(_overall(report), style="bold")]


@contextmanager
def progress_bar(console: Any | None = None) -> Iterator[Progress]:
    """A rich progress bar, as a ``progress`` callback for :func:`run_bench`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

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


def write_plots(
    report: dict[str, Any],
    runs: list[dict[str, Any]],
    signals: dict[str, list[dict[str, Any]]],
    scenarios: dict[str, Scenario],
    out: Path,
) -> dict[str, str]:
    """A timeline per scenario (its key signals, seed 1) and the MTTD distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, str] = {}
    first = {r["scenario"]: r for r in runs if r["seed"] == 1}
    for name, series in sorted(signals.items()):
        sc = scenarios[name]
        run = first[name]
        fig, axes = plt.subplots(len(series), 1, figsize=(10, 1.9 * len(series) + 0.8), sharex=True)
        axes = np.atleast_1d(axes)
        origin = sc.start

        def minutes(t: float, origin: float = origin) -> float:
            return (t - origin) / 60

        for ax, s in zip(axes, series, strict=True):
            ax.plot([minutes(t) for t in s["t"]], s["v"], lw=0.8, color="tab:blue")
            ax.set_ylabel(s["label"], fontsize=7, rotation=0, ha="right", va="center")
            ax.tick_params(labelsize=7)
            for m in sc.maintenance:
                ax.axvspan(minutes(m.start), minutes(m.end), color="tab:green", alpha=0.12)
            for g in run["gaps"]:
                end = g["ended_at"] if g["ended_at"] is not None else sc.end
                ax.axvspan(minutes(g["start"]), minutes(end), color="grey", alpha=0.15)
            if sc.truth.fault_start is not None:
                ax.axvline(minutes(sc.truth.fault_start), color="red", ls="--", lw=1)
            if sc.truth.impact_start is not None:
                ax.axvline(minutes(sc.truth.impact_start), color="orange", ls="--", lw=1)
            for w in run["warnings"]:
                ax.axvline(minutes(w), color="purple", ls=":", lw=1)
            for inc in run["incidents"]:
                ax.axvline(minutes(inc["opened_at"]), color="black", lw=1.2)
        axes[-1].set_xlabel("minutes from scenario start (seed 1)")
        handles = [
            plt.Line2D([], [], color="red", ls="--", label="fault start"),
            plt.Line2D([], [], color="orange", ls="--", label="impact start"),
            plt.Line2D([], [], color="purple", ls=":", label="warning"),
            plt.Line2D([], [], color="black", label="page (incident opened)"),
        ]
        axes[0].legend(handles=handles, fontsize=6, loc="upper left", ncol=4)
        fig.suptitle(f"{name}: {sc.description}", fontsize=9)
        fig.tight_layout()
        path = out / f"timeline-{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[name] = str(path)
    mttd = {
        r["name"]: [x["mttd_from_fault_s"] for x in r["runs"] if x["mttd_from_fault_s"] is not None]
        for r in report["scenarios"]
    }
    mttd = {k: v for k, v in mttd.items() if v}
    if mttd:
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(mttd) + 1.2))
        names = sorted(mttd, key=lambda n: float(np.median(mttd[n])))
        ax.boxplot([mttd[n] for n in names], orientation="horizontal", tick_labels=names)
        ax.set_xscale("symlog", linthresh=60)
        ax.set_xlabel("MTTD from fault start, s (pages; warnings and gaps for those kinds)")
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        path = out / "mttd.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths["mttd"] = str(path)
    return paths

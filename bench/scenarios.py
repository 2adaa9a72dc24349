"""The MTTD benchmark: every scenario of the library, seed by seed, on the
embedded engine, in a pool of processes, scored against the scenario's truth.

For each scenario it reports MTTD from fault start and from impact start
(median, p90, max over seeds), time to root cause, whether the SEV and the
root cause were right, false pages per simulated day, the impact estimate's
error, and whether a telemetry gap was reported; then paging precision and
recall over the whole run (what counts: :mod:`bench.score`). It writes
``report.json``, ``report.md`` and ``report.html`` (:mod:`bench.report`; the
HTML page holds the plots too, to be read or sent on its own), a timeline plot
per scenario and the MTTD distribution (:mod:`bench.plots`) into an output folder.

The runner logs nothing and prints nothing; a ``progress`` callback hears of
each finished run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import cache
from pathlib import Path
from typing import Any

from bench.plots import write_plots
from bench.replay import replay
from bench.report import render_html, render_markdown
from bench.score import evaluate, summarize
from bench.signals import SignalTap, key_signals
from infra.settings import Settings
from models.impact import Business
from models.topology import Topology
from producers.scenario import Library, Scenario, load_scenarios

Progress = Callable[[int, int, str, int], None]  # (done, total, scenario, seed)


@cache
def _world() -> tuple[Topology, Business, Library]:
    settings = Settings()
    topology = settings.load_topology()
    return topology, settings.load_business(), load_scenarios(settings.scenarios, topology)


def _quiet_worker() -> None:
    # Rejections are counted in the report; one log line each would drown the progress bar.
    logging.getLogger("streams.embedded").setLevel(logging.ERROR)


def run_one(scenario: Scenario, seed: int, signals: bool = False) -> dict[str, Any]:
    """Replay one scenario with one seed and score it (runs in a worker process)."""
    topology, business, _ = _world()
    tap = SignalTap(key_signals(scenario, topology)) if signals else None
    result = replay(scenario, topology, business, seed=seed, tap=tap)
    scored = evaluate(result, topology)
    if tap is not None:
        scored["signals"] = tap.series()
    return scored


def choose(names: list[str] | None) -> dict[str, Scenario]:
    """The scenarios to run, by name: ``names`` (names in the library, or
    files name.toml), or the whole library; KeyError names those the library
    lacks, ValueError a file that cannot be used."""
    topology, _, scenarios = _world()
    if not names:
        return dict(scenarios)
    chosen: dict[str, Scenario] = {}
    unknown = []
    for name in names:
        try:
            scenario = scenarios.find(name, topology)
        except KeyError:
            unknown.append(name)
            continue
        chosen[scenario.name] = scenario
    if unknown:
        raise KeyError(f"unknown scenarios: {', '.join(unknown)}")
    return chosen


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
    scenarios = choose(names)
    # Longest first, so that the pool is not left waiting on one long run.
    tasks = sorted(
        ((sc, s) for sc in scenarios.values() for s in range(1, seeds + 1)),
        key=lambda t: -(t[0].end - t[0].start),
    )
    runs: list[dict[str, Any]] = []
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    with ProcessPoolExecutor(max_workers=jobs, initializer=_quiet_worker) as pool:
        futures = {pool.submit(run_one, sc, s, s == 1): (sc.name, s) for sc, s in tasks}
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
    (out / "report.html").write_text(render_html(report, out), encoding="utf-8")
    return report


def _json_default(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not serialisable: {value!r}")

"""Announced maintenance on a real broker: a worker reads the operator's
calendar (``FORESHOCK_MAINTENANCE``), picks up an edit without a restart,
and does not page for the announced work, as the embedded engine does not;
without the calendar the same telemetry pages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from bench.kafka import Reports, sources_with_data
from producers.scenario import Scenario
from producers.sources.simulator import Simulator
from tests.kafka.conftest import Namespace
from tests.kafka.test_worker import PROCESSING_S, incident_events

SCENARIO = "planned-maintenance"
RELOAD_WAIT_S = 60


def calendar(scenario: Scenario) -> str:
    """The scenario's announced maintenance, as an operator's calendar."""

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat()

    return "".join(
        f'[[maintenance]]\ncomponents = {list(w.components)!r}\nstart = "{iso(w.start)}"\n'
        f'end = "{iso(w.end)}"\nnote = "{w.note}"\n'
        for w in scenario.maintenance
    ).replace("'", '"')


def settled(ns: Namespace, scenario: Scenario) -> bool:
    """Every window decided and every report correlated and committed."""
    sources = asyncio.run(sources_with_data(ns.settings))
    done = Reports(sources, scenario.end).done(ns.records("foreshock.windows"))
    return done and ns.reports_correlated()


def run(ns: Namespace, scenario: Scenario, topology, business, announced: Path | None) -> list:
    ns.workdir.mkdir()
    if announced is not None:
        ns.settings = ns.settings.model_copy(update={"maintenance": announced})
    with ns.worker() as worker:
        worker.wait_ready()
        if announced is not None:
            # Announced after the worker started: it must pick the edit up.
            announced.write_text(calendar(scenario))
            ns.wait_for(
                "the worker to read the calendar",
                lambda: (
                    f"maintenance calendar: {len(scenario.maintenance)} windows" in worker.text()
                ),
                RELOAD_WAIT_S,
                [worker],
            )
        ns.publish(Simulator(scenario, topology, business, 1).messages())
        ns.wait_for("the stream to settle", lambda: settled(ns, scenario), PROCESSING_S, [worker])
    return [e for e in incident_events(ns) if e["kind"] == "opened"]


# About 2 min: the same 90-minute day twice, with and without the calendar,
# each by its own worker; a short world would cut the maintenance window.
def test_announced_maintenance_does_not_page_and_unannounced_does(
    kafka_bootstrap, tmp_path, scenarios, topology, business
):
    scenario = scenarios[SCENARIO]
    assert scenario.maintenance and scenario.truth.expect == "none"
    announced = tmp_path / "maintenance.toml"
    announced.write_text("")  # an empty calendar, edited once the worker runs
    quiet = run(Namespace(kafka_bootstrap, tmp_path / "a"), scenario, topology, business, announced)
    paged = run(Namespace(kafka_bootstrap, tmp_path / "b"), scenario, topology, business, None)
    print(
        f"\n{SCENARIO}: with the calendar {len(quiet)} incidents opened; "
        f"without it {len(paged)} ({', '.join(e['id'] for e in paged)})"
    )
    assert quiet == []
    assert paged and {e["root_cause"] for e in paged} <= set(scenario.maintenance[0].components)

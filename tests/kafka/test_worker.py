"""Foreshock's Faust workers on a real broker: the same incident as the
embedded engine, across a restart, and with two workers sharing the work.

They run on the short world of the reference outage (``tests/conftest.py``):
the day's own messages from 30 min before the fault to 15 min after, which
the embedded engine replays too."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from bench.kafka import Reports, WorkerProcess, sources_with_data
from models.schema import Telemetry
from producers.sources.simulator import Simulator
from tests.conftest import short_span
from tests.kafka.conftest import Namespace

SCENARIO = "reference-2022-10-04"
WINDOW_S = 10.0
PROCESSING_S = 600  # generous bound on a worker's time to replay the short world


def incident_events(ns: Namespace) -> list[dict[str, Any]]:
    return [e for e in ns.read("foreshock.incidents") if e.get("type") == "incident"]


def opened_once(ns: Namespace) -> dict[str, Any]:
    """The one incident of the run, in its last state; fails on any other count."""
    events = incident_events(ns)
    opened = [e for e in events if e["kind"] == "opened"]
    assert len(opened) == 1, [(e["id"], e["at"]) for e in opened]
    assert {e["id"] for e in events} == {opened[0]["id"]}
    return events[-1]


def detecting(worker: WorkerProcess) -> set[str]:
    """Partitions the worker ran detectors on."""
    return set(re.findall(r"detecting on (\S+):", worker.text()))


def simulate(
    scenarios, topology, business, seed: int = 1, name: str = SCENARIO
) -> Iterator[Telemetry]:
    """A scenario's short world: the reference outage's unless named."""
    since, until = short_span(scenarios[name])
    sim = Simulator(scenarios[name], topology, business, seed, since=since, until=until)
    return sim.messages()


def all_decided(
    ns: Namespace, scenarios, sources: set[str] | None = None, name: str = SCENARIO
) -> bool:
    """Every partition with telemetry has decided the last window of the short world."""
    if sources is None:
        sources = asyncio.run(sources_with_data(ns.settings))
    _, until = short_span(scenarios[name])
    return Reports(sources, until).done(ns.records("foreshock.windows"))


def run_to_the_end(
    ns: Namespace, scenarios, workers: list[WorkerProcess], name: str = SCENARIO
) -> None:
    """Until the workers have decided every window of the short world and
    the correlator has taken in (committed) every window report."""
    sources = asyncio.run(sources_with_data(ns.settings))
    ns.wait_for(
        "every window to be decided",
        lambda: all_decided(ns, scenarios, sources, name),
        PROCESSING_S,
        workers,
    )
    ns.wait_for("every window report to be correlated", ns.reports_correlated, 120, workers)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_incident_as_the_embedded_engine(
    namespace, replayed, scenarios, topology, business, seed
):
    truth = scenarios[SCENARIO].truth
    published = namespace.publish(simulate(scenarios, topology, business, seed))
    # The embedded engine's run on the same messages.
    replay = replayed(SCENARIO, seed, short=True)
    assert published.messages == replay.stats.messages > 60_000
    with namespace.worker() as worker:
        run_to_the_end(namespace, scenarios, [worker])
    kafka = opened_once(namespace)
    # The embedded engine's incidents, in the JSON form the worker publishes.
    embedded = [i.to_dict() for i in replay.incidents]
    assert len(embedded) == 1
    assert kafka["id"] == embedded[0]["id"]
    assert kafka["sev"] == embedded[0]["sev"] == 1
    assert kafka["root_cause"] == embedded[0]["root_cause"] == truth.root_cause
    assert set(kafka["blast_radius"]) == set(embedded[0]["blast_radius"])
    assert abs(kafka["opened_at"] - embedded[0]["opened_at"]) <= WINDOW_S
    sev1 = min(e["at"] for e in incident_events(namespace) if e["sev"] == 1)
    assert 0 <= sev1 - truth.impact_start <= 30
    print(
        f"seed {seed}: opened after impact, embedded "
        f"{embedded[0]['opened_at'] - truth.impact_start:.0f} s, Kafka "
        f"{kafka['opened_at'] - truth.impact_start:.0f} s; SEV-1 after impact, Kafka "
        f"{sev1 - truth.impact_start:.0f} s"
    )


# About 60 s: two workers one after the other, the second restoring every
# partition from the changelog.
def test_a_restarted_worker_resumes_from_the_changelog(namespace, scenarios, topology, business):
    truth = scenarios[SCENARIO].truth
    assert truth.fault_start is not None and truth.precursor_start is not None
    # The first worker sees the day up to after the leak's warning, before the fault.
    cut = truth.fault_start - 900
    messages = simulate(scenarios, topology, business)
    namespace.publish(itertools.takewhile(lambda m: m.time <= cut, messages))
    sources = asyncio.run(sources_with_data(namespace.settings))

    def before_the_cut() -> bool:
        return Reports(sources, cut).done(namespace.records("foreshock.windows"))

    def correlator_snapshotted() -> bool:
        return namespace.committed("foreshock.windows")[0] > 0

    with namespace.worker("first") as first:
        namespace.wait_for("every window before the cut", before_the_cut, PROCESSING_S, [first])
        # Reports are committed once a snapshot of the correlator covers them.
        namespace.wait_for(
            "a snapshot of the correlator", correlator_snapshotted, PROCESSING_S, [first]
        )
    warnings = [
        e for e in namespace.read("foreshock.anomalies") if e["type"] == "ExhaustionWarning"
    ]
    assert warnings, "no exhaustion warning before the cut"
    assert not incident_events(namespace)
    done, end = namespace.committed("telemetry.pods")
    assert 0 < done <= end, (done, end)

    # The rest of the day, with the fault, goes to a new worker.
    namespace.publish(messages)
    with namespace.worker("second") as second:
        run_to_the_end(namespace, scenarios, [second])
    resumed = re.findall(r"detecting on (\S+): resumed from the snapshot", second.text())
    learned = re.findall(r": (\d+) series learned", second.text())
    assert set(resumed) == sources, second.tail()
    assert len(learned) == len(sources) and all(int(n) > 0 for n in learned), second.tail()
    assert "from scratch" not in second.text()
    incident = opened_once(namespace)
    assert incident["sev"] == 1
    assert incident["root_cause"] == truth.root_cause
    assert 0 <= incident["opened_at"] - truth.fault_start <= 45


def test_two_workers_share_the_partitions_and_open_one_incident(
    namespace, replayed, scenarios, topology, business
):
    truth = scenarios[SCENARIO].truth
    namespace.publish(simulate(scenarios, topology, business))
    with namespace.worker("a") as a:
        # b joins once a is under way: a rebalance takes partitions, with
        # the state a learned, away from a, and leaves a the others.
        namespace.wait_for("a to detect", lambda: detecting(a), 120, [a])
        with namespace.worker("b") as b:
            run_to_the_end(namespace, scenarios, [a, b])
    assert detecting(a) and detecting(b), "one worker got no partition"
    for w in (a, b):
        assert "Restarting dead" not in w.text(), w.tail()
    incident = opened_once(namespace)
    embedded = replayed(SCENARIO, 1, short=True).incidents[0].to_dict()
    assert incident["id"] == embedded["id"]
    assert incident["sev"] == 1
    assert incident["root_cause"] == truth.root_cause
    assert set(incident["blast_radius"]) == set(embedded["blast_radius"])
    assert abs(incident["opened_at"] - embedded["opened_at"]) <= WINDOW_S

    # What on-call reads: every change the workers wrote, the oldest first.
    written = namespace.read("foreshock.incidents")
    as_written = namespace.command("incidents", "--no-follow", "--json")
    assert as_written.returncode == 0, as_written.stderr
    assert [orjson.loads(line) for line in as_written.stdout.splitlines()] == written
    shown = namespace.command("incidents", "--no-follow").stdout.splitlines()
    assert len(shown) == len(written), shown
    for line, change in zip(shown, written, strict=True):
        assert f" {change['kind']} " in line and f"{change['id']} SEV-{change['sev']}:" in line
        assert line.count(change["id"]) == 1 and line.count("SEV-") == 1, line


def test_two_unrelated_outages_are_two_incidents_as_in_the_embedded_engine(
    namespace, replayed, scenarios, topology, business
):
    name = "two-outages-at-once"
    namespace.publish(simulate(scenarios, topology, business, name=name))
    with namespace.worker() as worker:
        run_to_the_end(namespace, scenarios, [worker], name)
    last: dict[str, dict[str, Any]] = {}
    for change in incident_events(namespace):
        last[change["id"]] = change
    embedded = {i.id: i.to_dict() for i in replayed(name, 1, short=True).incidents}
    assert sorted(last) == sorted(embedded), (sorted(last), sorted(embedded))
    for truth in scenarios[name].truths:
        (kafka,) = [i for i in last.values() if i["root_cause"] in truth.root_causes]
        assert kafka["sev"] == embedded[kafka["id"]]["sev"] == truth.sev
        assert kafka["root_cause_region"] == truth.region
        assert set(kafka["blast_radius"]) == set(embedded[kafka["id"]]["blast_radius"])
        print(f"{kafka['id']}: SEV-{kafka['sev']}, {kafka['root_cause_region'] or 'everywhere'}")


def test_incidents_before_any_worker_ran(namespace):
    done = namespace.command("incidents", "--no-follow")
    assert done.returncode == 2
    assert f"{namespace.topic('foreshock.incidents')}: no such topic" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

"""Change events on a real broker: ``foreshock change`` announces a deploy
shortly before a fault, a bad change is published beside it; the worker
dead-letters the bad one with its reason and hands the good one to the
correlator, which keeps it (in its snapshot, and in the incident once the
ranking shows changes) while the fault's incident opens."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import orjson
import pytest
from typer.testing import CliRunner

from foreshock.cli import app
from infra import kafka
from models.changes import ChangeEvent, ChangeKind
from models.config import PipelineConfig
from models.correlate import CorrelateStage
from producers.sources.simulator import Simulator
from streams.checkpoint import unpack
from tests.kafka.conftest import Namespace
from tests.kafka.test_worker import incident_events

SCENARIO = "bad-deploy"
AFTER_FAULT_S = 300  # event seconds published past the fault: enough for the incident
TIMEOUT_S = 100


def announce(ns: Namespace, monkeypatch: pytest.MonkeyPatch, change: ChangeEvent) -> str:
    """``foreshock change`` with the test's settings: the line it printed."""
    for name, value in {
        "KAFKA_BOOTSTRAP": ns.settings.kafka_bootstrap,
        "TOPIC_PREFIX": ns.settings.topic_prefix,
        "WEB_ENABLED": "false",
    }.items():
        monkeypatch.setenv(f"FORESHOCK_{name}", value)
    at = datetime.fromtimestamp(change.time, UTC).isoformat()
    args = ["change", change.component, change.kind, "--at", at]
    args += ["--description", change.description, "--who", change.who]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


async def publish_raw(ns: Namespace, value: bytes) -> None:
    async with kafka.producer(ns.settings, acks="all") as producer:
        await producer.send_and_wait(ns.topic(kafka.CHANGES), value, key=b"lb")


def kept_changes(ns: Namespace, topology) -> set[ChangeEvent]:
    """The changes in the correlator's latest snapshot."""
    blobs = list(ns.snapshots(kafka.CORRELATE_STATE).values())
    if not blobs:
        return set()
    [blob] = blobs  # the correlator's table has one partition
    _, snapshot = unpack(blob)
    return CorrelateStage.restore(snapshot, topology, PipelineConfig()).changes


def test_a_change_reaches_the_correlator_and_a_bad_one_the_dead_letter(
    namespace, monkeypatch, scenarios, topology, business
):
    ns = namespace
    scenario = scenarios[SCENARIO]
    fault = scenario.truth.fault_start
    deploy = ChangeEvent(fault - 120, scenario.truth.root_cause, ChangeKind.DEPLOY, "v2.3", "ci")
    bad = orjson.dumps(deploy.to_wire() | {"kind": "reboot"})
    printed = announce(ns, monkeypatch, deploy)
    assert printed.strip() == f"published {deploy} to {ns.topic(kafka.CHANGES)}"
    asyncio.run(publish_raw(ns, bad))
    telemetry = Simulator(scenario, topology, business, 1).messages()
    ns.publish(itertools.takewhile(lambda m: m.time <= fault + AFTER_FAULT_S, telemetry))

    with ns.worker() as worker:
        letters = ns.wait_for(
            "the bad change's dead letter",
            lambda: ns.records(kafka.DEADLETTER),
            TIMEOUT_S,
            [worker],
        )
        opened = ns.wait_for(
            "the incident",
            lambda: [e for e in incident_events(ns) if e["kind"] == "opened"],
            TIMEOUT_S,
            [worker],
        )
    assert [r.value for r in letters] == [bad]
    headers = dict(letters[0].headers)
    assert headers["reason"] == b"unknown_change_kind"
    assert headers["topic"] == ns.topic(kafka.CHANGES).encode()
    # The correlator holds the change: in its snapshot, taken with every incident change.
    assert kept_changes(ns, topology) == {deploy}
    assert opened[0]["root_cause"] == deploy.component
    # ... and the incident shows it behind its leading candidate.
    top = opened[0]["root_cause_candidates"][0]
    assert top["node"] == deploy.component and top["change"] == deploy.to_wire()
    assert str(deploy) in top["reasons"][0]

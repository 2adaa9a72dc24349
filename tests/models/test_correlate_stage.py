"""Correlation window by window: a failing dependency opens the incident
before users are hurt, and escalates it when they are."""

from __future__ import annotations

import pytest

from models.config import PipelineConfig
from models.correlate import CorrelateStage
from models.evidence import Evidence, EvidenceKind
from models.impact import Business
from models.incident import Change, Status
from models.report import Note, WindowReport
from models.topology import Topology
from tests.models.test_pipeline import T0, WORLD

LATENCY = Evidence("db", "p99_latency_ms")
ERRORS = Evidence("db", "error_rate")
TRAFFIC_DOWN = Evidence("db", "ops_per_s", EvidenceKind.DROP)
USERS_HURT = {("api", "error_rate"): 0.5, ("logins/north", "success_ratio"): 0.5}


@pytest.fixture
def stage(business_data):
    config = PipelineConfig(resolve_after_s=120.0, reopen_within_s=0.0)
    return CorrelateStage(Topology.from_dict(WORLD), Business.from_dict(business_data), config)


def early(stage, n, at, losses):
    """An early look at the n-th window, delivered ``at`` seconds into it."""
    start = T0 + 10 * n
    return stage.add(WindowReport("pods:0", start, start + at, (), losses, early=True))


def window(stage, n, *notes, losses=None):
    """Correlate the n-th window after T0, with these notes: (evidence, onset n, active)."""
    start = T0 + 10 * n
    made = tuple(Note(ev, T0 + 10 * at, active) for ev, at, active in notes)
    return stage.add(WindowReport("pods:0", start, start + 10, made, losses or {}))


def test_the_world_has_one_critical_dependency(stage):
    # logins and api measure users; db is behind them and measures none.
    assert stage.topology.critical == {"db"}


def test_a_dependency_failing_on_two_metrics_opens_at_sev_4_then_escalates(stage):
    assert window(stage, 0, (LATENCY, 0, True)) == []  # one metric: not yet
    (opened,) = window(stage, 1, (ERRORS, 1, True))
    assert opened.kind is Change.OPENED
    inc = opened.incident
    assert (inc.sev, inc.root_cause) == (4, "db")
    assert inc.sev_reasons == ("critical dependency db failing, users not yet affected",)
    assert window(stage, 2) == []  # still failing, users still fine: it stays open
    assert stage.tracker.current.status is Status.OPEN
    escalated = [e for e in window(stage, 3, losses=USERS_HURT) if e.kind is Change.ESCALATED]
    assert escalated and escalated[-1].incident.sev < 4
    assert len(stage.tracker.incidents) == 1


@pytest.mark.parametrize(
    "windows",
    [
        [[(LATENCY, 0, True)], [(ERRORS, 7, True)]],  # 70 s apart: not failing together
        [[(TRAFFIC_DOWN, 0, True), (Evidence("db", "conns", EvidenceKind.SURGE), 0, True)]],
        [[(LATENCY, 0, True)], [(LATENCY, 1, False), (ERRORS, 1, True)]],  # one at a time
    ],
    ids=["too-far-apart", "traffic-only", "one-after-the-other"],
)
def test_what_is_not_a_failing_dependency_opens_nothing(stage, windows):
    events = [e for notes in windows for e in window(stage, notes[0][1], *notes)]
    events += window(stage, 20)
    assert events == []


def test_a_failure_that_outlives_its_incident_does_not_open_it_again(stage):
    window(stage, 0, (LATENCY, 0, True), (ERRORS, 0, True))
    window(stage, 1, losses=USERS_HURT)
    events = [e for n in range(2, 80) for e in window(stage, n)]  # users fine, db still red
    kinds = [e.kind for e in events]
    assert Change.RESOLVED in kinds, kinds
    after = kinds[kinds.index(Change.RESOLVED) + 1 :]
    assert Change.OPENED not in after and Change.REOPENED not in after
    assert len(stage.tracker.incidents) == 1


def test_an_incident_users_never_felt_resolves_once_the_dependency_recovers(stage):
    window(stage, 0, (LATENCY, 0, True), (ERRORS, 0, True))
    assert [e.kind for e in window(stage, 5)] == []
    recovering = window(stage, 6, (LATENCY, 6, False), (ERRORS, 6, False))
    assert [e.kind for e in recovering] == [Change.RECOVERING]
    events = [e for n in range(7, 30) for e in window(stage, n)]
    assert [e.kind for e in events] == [Change.RESOLVED]


def test_an_early_look_raises_the_sev_of_an_open_incident_and_nothing_else(stage):
    assert early(stage, 0, 5, USERS_HURT) == []  # nothing open: it opens nothing
    window(stage, 0)
    window(stage, 1, (LATENCY, 1, True), (ERRORS, 1, True))  # SEV-4
    # A look at window 3 waits for window 2: escalations come in window order.
    assert early(stage, 3, 5, USERS_HURT) == []
    (escalated,) = window(stage, 2)
    assert (escalated.kind, escalated.at) == (Change.ESCALATED, T0 + 35)
    assert escalated.incident.sev < 4
    assert stage.correlated_until == T0 + 20  # the look decided no window
    assert escalated.incident.impact.peak_share == 0  # and measured nothing


def test_early_looks_waiting_survive_a_snapshot(stage, business_data):
    window(stage, 0, (LATENCY, 0, True), (ERRORS, 0, True))
    early(stage, 2, 5, USERS_HURT)
    restored = CorrelateStage.restore(
        stage.snapshot(), stage.topology, stage.config, Business.from_dict(business_data)
    )
    assert restored.to_state() == stage.to_state()
    assert [e.kind for e in window(restored, 1)] == [Change.ESCALATED]

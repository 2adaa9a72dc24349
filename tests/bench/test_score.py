"""Scoring against a truth that lists acceptable root causes, the SEVs the
incident must pass through, and several expectations at once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.replay import Replay
from bench.score import evaluate, summarize
from models.gaps import TelemetryGap
from models.impact import Impact
from models.incident import Change, Incident, IncidentEvent
from models.trend import ExhaustionWarning
from producers.scenario import Scenario, Truth
from streams.embedded import RunStats

FAULT = 1_664_877_600.0  # 2022-10-04 10:00 UTC
NONE = Impact(0.5, 1e6, 0.1, 100.0, 1000.0, 0.0, 0.5, 1e6)


def run(truth: Truth, *events: object) -> Replay:
    sc = Scenario("t", "", FAULT - 600, FAULT + 3600, truth)
    return Replay(sc, 1, RunStats(), list(events))  # type: ignore[arg-type]


def escalating(*sevs: int, root_cause: str = "postgres") -> list[IncidentEvent]:
    """An incident opened at the first SEV, escalated a minute apart to the others."""
    inc = Incident("INC-1", FAULT + 30, FAULT, sevs[0], (), root_cause, (), (), NONE)
    out = [IncidentEvent(Change.OPENED, inc.opened_at, "", inc)]
    for n, sev in enumerate(sevs[1:], 1):
        inc = replace(inc, sev=sev)
        out.append(IncidentEvent(Change.ESCALATED, inc.opened_at + 60 * n, "", inc))
    return out


PATH = Truth(fault_start=FAULT, root_cause="postgres", sev_path=(3, 1))


@pytest.mark.parametrize(
    "history, right",
    [((3, 1), True), ((3, 2, 1), True), ((2, 1), False), ((3, 2), False), ((1,), False)],
)
def test_the_sev_is_right_when_the_incident_follows_the_expected_path(topology, history, right):
    scored = evaluate(run(PATH, *escalating(*history)), topology)
    assert scored["detected"] and scored["sev_history"] == list(history)
    assert scored["sev_correct"] is right and scored["sev"] == history[-1]


def test_a_single_sev_is_the_final_one_whatever_came_before(topology):
    final = Truth(fault_start=FAULT, root_cause="postgres", sev=1)
    assert evaluate(run(final, *escalating(3, 1)), topology)["sev_correct"]
    assert not evaluate(run(final, *escalating(2)), topology)["sev_correct"]


def test_any_listed_root_cause_is_right(topology):
    either = Truth(fault_start=FAULT, root_causes=("mongodb", "postgres"), sev=2)
    scored = evaluate(run(either, *escalating(2)), topology)
    assert scored["root_cause_correct"] and scored["root_cause_after_s"] == 30
    wrong = evaluate(run(either, *escalating(2, root_cause="user-svc")), topology)
    assert not wrong["root_cause_correct"] and wrong["root_cause_after_s"] is None


def gap_at(after_s: float) -> TelemetryGap:
    return TelemetryGap("postgres", FAULT + after_s, FAULT + after_s + 60)


def test_page_and_gap_must_both_happen(topology):
    both = Truth(
        fault_start=FAULT,
        root_cause="postgres",
        sev=2,
        affected=("postgres",),
        expects=("page", "gap"),
    )
    scored = evaluate(run(both, *escalating(2), gap_at(0)), topology)
    assert scored["detected"] and scored["true_page"] and scored["gap_reported"]
    assert scored["expect"] == "page+gap" and scored["false_pages"] == 0
    assert scored["mttd_from_fault_s"] == 60  # the gap, told after the page
    no_gap = evaluate(run(both, *escalating(2)), topology)
    assert no_gap["true_page"] and not no_gap["gap_reported"]
    assert no_gap["detected"] is False and no_gap["mttd_from_fault_s"] is None
    late_gap = evaluate(run(both, *escalating(2), gap_at(600)), topology)
    assert late_gap["detected"] is False  # a gap from well after the fault is another one
    no_page = evaluate(run(both, gap_at(0)), topology)
    assert no_page["detected"] is False and no_page["gap_reported"]
    assert no_page["false_pages"] == 0 and not no_page["sev_correct"]
    report = summarize([scored, no_gap], {"t": run(both).scenario})
    assert report["recall"] == 1.0  # it paged both times: the page is what recall counts
    assert report["scenarios"][0]["detected"] == 0.5
    assert report["scenarios"][0]["expect"] == "page+gap"


def test_a_warning_and_a_gap_must_both_happen(topology):
    both = Truth(
        fault_start=FAULT,
        root_cause="postgres",
        affected=("postgres",),
        expects=("warning", "gap"),
    )
    warned = ExhaustionWarning("postgres", "pool_used_ratio", FAULT + 300, FAULT + 900, 0.8, 0.03)
    scored = evaluate(run(both, warned, gap_at(0)), topology)
    assert scored["detected"] and scored["root_cause_correct"]
    assert scored["mttd_from_fault_s"] == 300 and scored["pages"] == 0
    assert evaluate(run(both, warned), topology)["detected"] is False


def test_a_single_expectation_scores_as_it_always_did(topology):
    page = Truth(fault_start=FAULT, root_cause="postgres", sev=2)
    scored = evaluate(run(page, *escalating(2)), topology)
    assert scored["expect"] == "page" and scored["expects"] == ["page"]
    assert scored["detected"] and scored["mttd_from_fault_s"] == 30
    missed = evaluate(run(page), topology)
    assert missed["detected"] is False and missed["sev_correct"] is False
    assert missed["gap_reported"] is False
    decoy = evaluate(run(Truth(kind="decoy", expects=("none",)), *escalating(2)), topology)
    assert decoy["detected"] is None and decoy["false_pages"] == 1


def test_several_faults_are_each_scored_against_their_own_page(topology):
    database = Truth(fault_start=FAULT, root_cause="postgres", sev=1)
    edge = Truth(fault_start=FAULT + 240, root_cause="cdn", sev=2, region="us-west")
    sc = Scenario("t", "", FAULT - 600, FAULT + 3600, database, truths=(database, edge))
    db = escalating(1)
    cdn = Incident("INC-2", FAULT + 270, FAULT + 240, 2, (), "cdn", (), (), NONE)
    scored = evaluate(
        Replay(sc, 1, RunStats(), [*db, IncidentEvent(Change.OPENED, 0, "", cdn)]), topology
    )
    # The CDN's page names no region: the root cause is not right there.
    assert scored["detected"] and scored["sev_correct"] and not scored["root_cause_correct"]
    assert [f["root_cause_correct"] for f in scored["faults"]] == [True, False]
    assert scored["false_pages"] == 0 and scored["pages"] == 2
    # One page for both: the second fault is missed, and nothing is false.
    alone = evaluate(Replay(sc, 1, RunStats(), db), topology)
    assert not alone["detected"] and [f["detected"] for f in alone["faults"]] == [True, False]


def test_two_outages_at_once_replay_as_two_incidents_each_right(replayed, topology):
    """The embedded engine on the library's two unrelated outages."""
    result = replayed("two-outages-at-once", 1, short=True)
    scored = evaluate(result, topology)
    assert scored["pages"] == 2, [(i.id, i.root_cause) for i in result.incidents]
    assert scored["detected"] and scored["sev_correct"] and scored["root_cause_correct"]
    assert scored["false_pages"] == 0
    assert [f["region"] for f in scored["faults"]] == [None, "us-west"]


def test_two_outages_whose_users_meet_downstream_replay_as_two_incidents(replayed, topology):
    """A fault minutes into another, whose victims are also the first's
    callers' callers: each fault its own incident, root cause and SEV."""
    result = replayed("outages-meet-downstream", 1, short=True)
    scored = evaluate(result, topology)
    assert scored["pages"] == 2, [(i.id, i.root_cause) for i in result.incidents]
    assert scored["detected"] and scored["sev_correct"] and scored["root_cause_correct"]
    assert scored["false_pages"] == 0
    shard = next(i for i in result.incidents if i.root_cause == "mongodb")
    assert shard.blast_radius == ("playlist-svc",) and shard.sev == 3


def test_a_deploy_minutes_before_an_unrelated_failure_is_not_its_cause(replayed, topology):
    result = replayed("innocent-deploy", 1, short=True)
    scored = evaluate(result, topology)
    assert scored["pages"] == 1, [(i.id, i.root_cause) for i in result.incidents]
    assert scored["detected"] and scored["sev_correct"] and scored["root_cause_correct"]
    (inc,) = result.incidents
    assert "postgres" not in inc.blast_radius and "user-svc" in inc.blast_radius


def test_an_unrelated_failure_soon_after_an_incident_resolved_is_a_new_one(replayed, topology):
    result = replayed("unrelated-after-resolve", 1)
    scored = evaluate(result, topology)
    assert scored["pages"] == 2, [(i.id, i.root_cause) for i in result.incidents]
    assert scored["detected"] and scored["sev_correct"] and scored["root_cause_correct"]
    database = result.incidents[0]
    assert Change.REOPENED not in [e.kind for e in database.timeline]
    assert database.mttr_s is not None and database.mttr_s < 25 * 60

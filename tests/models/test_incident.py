"""The incident lifecycle: open, escalate, recover, resolve, relapse, reopen."""

from __future__ import annotations

import pytest

from models.evidence import Evidence, Suspect
from models.impact import ImpactMeter
from models.incident import IncidentTracker
from models.severity import UserImpact

T = 1_664_910_000.0  # 2022-10-04T19:00:00Z
SIX = ("us-east", "us-west", "sa-east", "eu-west", "eu-central", "ap-southeast")
REDIS = Suspect(
    "redis-sessions",
    T - 300.0,
    ("logins", "user-svc"),
    (Evidence("redis/node-01", "memory_used_ratio"),),
)
USERS = Suspect("user-svc", T - 100.0, ("logins",), (Evidence("user-svc", "error_rate"),))


def hurt(share):
    return UserImpact({"login": share}, dict.fromkeys(SIX, share), len(SIX))


CALM = hurt(0.0)


@pytest.fixture
def tracker(business):
    return IncidentTracker(ImpactMeter(business), resolve_after_s=600, reopen_within_s=1800)


def kinds(events):
    return [e.kind for e in events]


def open_incident(tracker, share=0.95, at=T, suspects=(REDIS,), blast=("logins",)):
    events = tracker.step(at, True, hurt(share), list(suspects), list(blast))
    assert kinds(events) == ["opened"]
    return tracker.current


def test_nothing_happens_while_users_are_fine(tracker):
    for i in range(10):
        assert tracker.step(T + 10 * i, False, hurt(0.5), [REDIS], ["logins"]) == []
    assert tracker.current is None
    assert tracker.incidents == []


def test_opens_once(tracker):
    events = tracker.step(T, True, hurt(0.95), [REDIS], ["logins"])
    assert kinds(events) == ["opened"]
    inc = tracker.current
    assert inc.id == "INC-20221004T190000-redis-sessions"
    assert tracker.current.dedup_key == "foreshock:INC-20221004T190000-redis-sessions"
    assert (tracker.current.sev, tracker.current.status, tracker.current.root_cause) == (
        1,
        "open",
        "redis-sessions",
    )
    assert tracker.current.onset == T - 300.0
    assert tracker.current.opened_at == T
    assert tracker.current.blast_radius == ("logins",)
    assert tracker.current.impact.share == 0.95
    text = events[0].text
    assert "SEV-1: login failing for 95% of users; 6 of 6 regions at ≥10%" in text
    assert text.endswith("; probable root cause redis-sessions")
    assert events[0].incident.id == inc.id
    for i in range(1, 20):
        events = tracker.step(T + 10 * i, True, hurt(0.95), [REDIS], ["logins"])
        assert "opened" not in kinds(events)
    assert [i.id for i in tracker.incidents] == [inc.id]


def test_opens_without_a_suspect(tracker):
    inc = open_incident(tracker, suspects=(), blast=())
    assert inc.id == "INC-20221004T190000-unknown"
    assert tracker.current.root_cause is None
    assert tracker.current.onset == T
    events = tracker.step(T + 10, True, hurt(0.95), [REDIS], ["logins"])
    assert kinds(events) == ["root_cause", "blast_radius"]
    assert tracker.current.root_cause == "redis-sessions"
    assert tracker.current.onset == T - 300.0  # the root cause went wrong before we opened
    assert inc.id == "INC-20221004T190000-unknown"  # the id does not change


def test_escalates_and_never_deescalates(tracker):
    open_incident(tracker, share=0.05)
    assert tracker.current.sev == 3
    events = tracker.step(T + 10, True, hurt(0.15), [REDIS], ["logins"])
    assert kinds(events) == ["escalated"]
    assert events[0].text.startswith("SEV-2: ")
    assert tracker.current.sev == 2
    events = tracker.step(T + 20, True, hurt(0.6), [REDIS], ["logins"])
    assert kinds(events) == ["escalated"]
    assert tracker.current.sev == 1
    reasons = tracker.current.sev_reasons
    assert reasons[0] == "login failing for 60% of users"
    assert tracker.step(T + 30, True, hurt(0.05), [REDIS], ["logins"]) == []
    assert tracker.current.sev == 1
    assert tracker.current.sev_reasons == reasons


def test_a_lasting_incident_escalates_with_its_duration(tracker):
    open_incident(tracker, share=0.05)
    assert tracker.step(T + 1799, True, hurt(0.05), [REDIS], ["logins"]) == []
    events = tracker.step(T + 1800, True, hurt(0.05), [REDIS], ["logins"])
    assert kinds(events) == ["escalated"]
    assert tracker.current.sev == 2
    assert tracker.current.sev_reasons[-1] == "lasting 30 min"
    assert tracker.step(T + 36_000, True, hurt(0.05), [REDIS], ["logins"]) == []
    assert tracker.current.sev == 2


def test_recovering_then_resolved_after_resolve_after_s(tracker):
    open_incident(tracker)
    events = tracker.step(T + 10, False, CALM, [REDIS], ["logins"])
    assert kinds(events) == ["recovering"]
    assert (tracker.current.status, tracker.current.recovering_since) == ("recovering", T + 10)
    for at in range(20, 610, 10):
        assert tracker.step(T + at, False, CALM, [REDIS], ["logins"]) == []
        assert tracker.current.status == "recovering"
    events = tracker.step(T + 610, False, CALM, [REDIS], ["logins"])
    assert kinds(events) == ["resolved"]
    assert (tracker.current.status, tracker.current.resolved_at) == ("resolved", T + 610)
    assert events[0].incident.mttr_s == 610
    assert events[0].incident.status == "resolved"
    assert tracker.step(T + 620, False, CALM, [REDIS], ["logins"]) == []
    assert [t.kind for t in tracker.current.timeline] == ["opened", "recovering", "resolved"]


def test_relapse_keeps_the_same_incident(tracker):
    inc = open_incident(tracker)
    tracker.step(T + 10, False, CALM, [REDIS], ["logins"])
    tracker.step(T + 500, False, CALM, [REDIS], ["logins"])
    events = tracker.step(T + 510, True, hurt(0.9), [REDIS], ["logins"])
    assert kinds(events) == ["relapsed"]
    assert (tracker.current.status, tracker.current.recovering_since) == ("open", None)
    assert tracker.current.id == inc.id
    assert len(tracker.incidents) == 1
    # recovery restarts from zero
    assert kinds(tracker.step(T + 520, False, CALM, [REDIS], ["logins"])) == ["recovering"]
    assert tracker.step(T + 1110, False, CALM, [REDIS], ["logins"]) == []
    assert kinds(tracker.step(T + 1120, False, CALM, [REDIS], ["logins"])) == ["resolved"]
    assert tracker.current.resolved_at == T + 1120


def _resolved(tracker):
    inc = open_incident(tracker)
    tracker.step(T + 10, False, CALM, [REDIS], ["logins"])
    assert kinds(tracker.step(T + 610, False, CALM, [REDIS], ["logins"])) == ["resolved"]
    return inc


def test_reopen_within_reopen_within_s_keeps_the_id(tracker):
    inc = _resolved(tracker)
    assert tracker.step(T + 1000, False, CALM, [], []) == []
    events = tracker.step(T + 610 + 1800, True, hurt(0.9), [REDIS], ["logins"])
    assert kinds(events) == ["reopened"]
    assert events[0].incident.id == inc.id
    assert (tracker.current.status, tracker.current.resolved_at) == ("open", None)
    assert tracker.current.id == inc.id
    assert len(tracker.incidents) == 1
    # and it goes through recovery again
    assert kinds(tracker.step(T + 2500, False, CALM, [REDIS], ["logins"])) == ["recovering"]
    assert kinds(tracker.step(T + 3100, False, CALM, [REDIS], ["logins"])) == ["resolved"]
    assert tracker.current.resolved_at == T + 3100


def test_a_later_outage_opens_a_new_incident(tracker):
    first = _resolved(tracker)
    at = T + 610 + 1801
    events = tracker.step(at, True, hurt(0.5), [USERS], ["logins"])
    assert kinds(events) == ["opened"]
    second = tracker.current
    assert second is not first
    assert second.id == "INC-20221004T194011-user-svc"
    assert second.id != first.id
    assert [i.id for i in tracker.incidents] == [first.id, second.id]
    assert tracker.incidents[0].status == "resolved"
    assert second.root_cause == "user-svc"


def test_a_new_incident_starts_a_fresh_impact_count(tracker):
    open_incident(tracker, share=1.0)
    tracker.step(T + 60, True, hurt(1.0), [REDIS], ["logins"])
    per_min = tracker.meter.business.revenue_usd_per_min_at_full_outage
    assert tracker.current.impact.revenue_usd_total == pytest.approx(round(per_min, 2))
    tracker.step(T + 70, False, CALM, [REDIS], ["logins"])
    tracker.step(T + 670, False, CALM, [REDIS], ["logins"])
    assert tracker.current.status == "resolved"
    total = tracker.current.impact.revenue_usd_total
    assert total == pytest.approx(round(per_min * (60 + 10) / 60, 2))
    second = open_incident(tracker, share=1.0, at=T + 10_000)
    assert second.impact.revenue_usd_total == 0.0
    assert tracker.incidents[0].impact.revenue_usd_total == total


def test_blast_radius_only_grows(tracker):
    open_incident(tracker, blast=("user-svc",))
    events = tracker.step(T + 10, True, hurt(0.9), [REDIS], ["logins", "user-svc"])
    assert kinds(events) == ["blast_radius"]
    assert events[0].text == "blast radius now includes logins"
    assert tracker.step(T + 20, True, hurt(0.9), [REDIS], ["api-gateway"])[0].kind == (
        "blast_radius"
    )
    assert tracker.current.blast_radius == ("api-gateway", "logins", "user-svc")
    assert tracker.step(T + 30, True, hurt(0.9), [REDIS], []) == []
    assert tracker.current.blast_radius == ("api-gateway", "logins", "user-svc")


def test_root_cause_follows_the_cascade_but_not_during_recovery(tracker):
    open_incident(tracker, suspects=(USERS,))
    assert tracker.current.root_cause == "user-svc"
    events = tracker.step(T + 10, True, hurt(0.9), [REDIS, USERS], ["logins"])
    assert kinds(events) == ["root_cause"]
    assert tracker.current.root_cause == "redis-sessions"
    assert tracker.current.onset == T - 300.0
    tracker.step(T + 20, False, CALM, [REDIS], ["logins"])
    assert tracker.current.status == "recovering"
    assert tracker.step(T + 30, False, CALM, [USERS], ["logins"]) == []
    assert tracker.current.root_cause == "redis-sessions"


def test_id_and_dedup_key_stay_as_the_root_cause_changes(tracker):
    inc = open_incident(tracker, suspects=(USERS,))
    key = tracker.current.dedup_key
    events = tracker.step(T + 10, True, hurt(0.9), [REDIS, USERS], ["logins"])
    assert kinds(events) == ["root_cause"]
    assert (inc.id, tracker.current.dedup_key) == ("INC-20221004T190000-user-svc", key)
    assert events[0].incident.dedup_key == key


def test_the_same_windows_give_the_same_incident_in_another_process(business):
    """Event time alone names the incident: a tracker that decides the same
    windows later (a restarted worker) opens it under the same id and key."""
    first, later = (IncidentTracker(ImpactMeter(business)) for _ in range(2))
    for tracker in (first, later):
        open_incident(tracker)
    assert first.current.id == later.current.id
    assert first.current.dedup_key == later.current.dedup_key


def test_an_open_incident_survives_a_snapshot(tracker):
    """Restored from its snapshot, the tracker updates the open incident and
    never opens it again."""
    inc = open_incident(tracker)
    restored = IncidentTracker.from_state(
        tracker.to_state(), tracker.meter.business, resolve_after_s=600, reopen_within_s=1800
    )
    events = restored.step(T + 10, True, hurt(0.95), [REDIS], ["logins", "user-svc"])
    assert kinds(events) == ["blast_radius"]
    assert events[0].incident.id == inc.id
    assert len(restored.incidents) == 1


def test_to_dict_lists_at_most_three_candidates(tracker):
    extra = [Suspect(f"s{i}", T, (), ()) for i in range(4)]
    open_incident(tracker, suspects=(REDIS, *extra))
    d = tracker.current.to_dict()
    assert [c["node"] for c in d["root_cause_candidates"]] == ["redis-sessions", "s0", "s1"]
    assert d["root_cause_candidates"][0]["explains"] == ["logins", "user-svc"]
    assert d["mttr_s"] is None
    assert d["timeline"][0]["kind"] == "opened"


def test_the_root_cause_is_never_inside_its_own_blast_radius(tracker):
    open_incident(tracker, suspects=(REDIS,), blast=("logins", "user-svc"))
    tracker.step(T + 10, False, CALM, [REDIS], ["logins", "user-svc"])
    assert tracker.current.status == "recovering"
    # While recovering the root cause stays, and another suspect's blast
    # radius (which holds the root cause) is not merged in.
    other = Suspect("postgres", T, ("redis-sessions", "api-gateway"), ())
    tracker.step(T + 20, False, CALM, [other], ["api-gateway", "redis-sessions"])
    inc = tracker.current
    assert inc.root_cause == "redis-sessions"
    assert inc.blast_radius == ("logins", "user-svc")
    # A new root cause that was in the blast radius leaves it.
    tracker.step(T + 30, True, hurt(0.9), [USERS], ["logins"])
    tracker.step(T + 40, True, hurt(0.9), [USERS], ["logins"])
    inc = tracker.current
    assert inc.root_cause == "user-svc"
    assert "user-svc" not in inc.blast_radius


def test_another_failure_soon_after_opens_a_new_incident_not_a_reopening(tracker):
    first = _resolved(tracker)
    edge = Suspect("cdn", T + 900, (), (Evidence("cdn/us-west", "error_rate"),))
    events = tracker.step(T + 1000, True, hurt(0.15), [edge], [])
    assert kinds(events) == ["opened"]
    assert tracker.current.root_cause == "cdn" and tracker.current.id != first.id
    assert tracker.incidents[0].status == "resolved" and len(tracker.incidents) == 2

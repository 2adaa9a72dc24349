"""One definition of detection for ``replay`` and ``bench``: the first incident
opened at or after the fault start; an earlier one is a false page."""

from __future__ import annotations

from dataclasses import replace

from bench.detection import first_page, mttd
from models.impact import Impact
from models.incident import Change, Incident, IncidentEvent
from producers.scenario import Truth

FAULT, IMPACT = 1_000.0, 1_030.0
TRUTH = Truth(fault_start=FAULT, impact_start=IMPACT, root_cause="db", sev=1)
NONE = Impact(0.5, 1e6, 0.1, 100.0, 1000.0, 0.0, 0.5, 1e6)


def incident(opened_at: float, sev: int = 2) -> Incident:
    return Incident(f"INC-{opened_at:.0f}", opened_at, opened_at, sev, (), "db", (), (), NONE)


def event(kind: Change, at: float, inc: Incident) -> IncidentEvent:
    return IncidentEvent(kind, at, "", inc)


def test_an_incident_before_the_fault_is_not_its_detection():
    early, late = incident(900.0, sev=1), incident(1_050.0)
    worse = replace(late, sev=1)
    events = [
        event(Change.OPENED, 900.0, early),
        event(Change.OPENED, 1_050.0, late),
        event(Change.ESCALATED, 1_080.0, worse),
    ]
    assert first_page([early, worse], TRUTH) is worse
    assert mttd([early, worse], events, TRUTH) == {
        "from_fault_s": 50.0,
        "from_impact_s": 20.0,
        "to_expected_sev_from_impact_s": 50.0,  # the early SEV-1 does not count
    }


def test_at_the_fault_start_counts_and_nothing_is_not_detected():
    at = incident(FAULT)
    assert first_page([at], TRUTH) is at
    assert mttd([], [], TRUTH) == dict.fromkeys(
        ("from_fault_s", "from_impact_s", "to_expected_sev_from_impact_s")
    )


def test_without_a_fault_start_every_incident_counts():
    decoy = Truth(kind="decoy")
    inc = incident(10.0)
    assert first_page([inc], decoy) is inc
    assert mttd([inc], [event(Change.OPENED, 10.0, inc)], decoy)["from_fault_s"] is None

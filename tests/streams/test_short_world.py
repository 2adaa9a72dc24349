"""The short world the broker tests run on (``tests/conftest.py``) is the
reference day cut around its fault, and opens the same incident."""

from __future__ import annotations

import itertools

from models.incident import IncidentEvent
from producers.sources import Simulator
from tests.conftest import short_span

SCENARIO = "reference-2022-10-04"


def sev_path(replay) -> list[tuple[float, int]]:
    """When the incident took each SEV, in order."""
    events = [e for e in replay.events if isinstance(e, IncidentEvent)]
    return [
        (b.at, b.incident.sev)
        for a, b in itertools.pairwise([None, *events])
        if a is None or a.incident.sev != b.incident.sev
    ]


def test_the_short_world_opens_the_same_incident_as_the_whole_day(replayed, scenarios):
    whole, short = replayed(SCENARIO, 1), replayed(SCENARIO, 1, short=True)
    since, until = short_span(scenarios[SCENARIO])
    assert 0 < short.stats.samples < whole.stats.samples / 5
    assert [i.id for i in short.incidents] == [i.id for i in whole.incidents]
    ours, theirs = short.incidents[0], whole.incidents[0]
    assert ours.root_cause == theirs.root_cause == scenarios[SCENARIO].truth.root_cause
    assert ours.opened_at == theirs.opened_at
    assert set(ours.blast_radius) == set(theirs.blast_radius)
    assert ours.sev == theirs.sev == 1
    # The SEV path up to the short world's end, escalation by escalation.
    assert sev_path(short) == [(at, sev) for at, sev in sev_path(whole) if at <= until]
    assert len(sev_path(short)) >= 2
    assert all(since <= w.at <= until for w in short.warnings) and short.warnings


def test_a_span_sends_the_whole_scenarios_messages_inside_it(scenarios, topology, business):
    scenario = scenarios["bad-deploy"]
    since, until = scenario.start + 600, scenario.end - 900
    whole = Simulator(scenario, topology, business, 2).messages()
    inside = [m for m in whole if since <= m.time <= until]
    cut = list(Simulator(scenario, topology, business, 2, since=since, until=until).messages())
    assert cut == inside
    assert cut and min(m.time for m in cut) >= since and max(m.time for m in cut) <= until

"""Shipped scenarios through the embedded engine, the surprise detectors
stepped together (the default) and one monitor per series: every event the
same, in the same order."""

from __future__ import annotations

import pytest

from bench.replay import replay
from models.config import PipelineConfig
from models.detect import Anomaly
from models.incident import IncidentEvent
from tests.conftest import short_span

# The short world in every tier; the whole day (about 20 s each) in make test.
WORLDS = [pytest.param(True, id="short"), pytest.param(False, id="day", marks=pytest.mark.slow)]


@pytest.mark.parametrize("short", WORLDS)
@pytest.mark.parametrize("scenario", ["redis-failover", "edge-config-push"])
def test_the_bank_and_one_monitor_per_series_decide_alike(
    scenario, short, replayed, scenarios, topology, business
):
    banked = replayed(scenario, 1, short=short)
    since, until = short_span(scenarios[scenario]) if short else (None, None)
    unbanked = PipelineConfig(vectorised=False)
    single = replay(
        scenarios[scenario], topology, business, seed=1, config=unbanked, since=since, until=until
    )
    assert banked.stats.series == single.stats.series > 600
    # repr: every field of every event, floats to the last bit
    assert [repr(e) for e in banked.events] == [repr(e) for e in single.events]
    assert any(isinstance(e, Anomaly) for e in banked.events)
    assert any(isinstance(e, IncidentEvent) for e in banked.events)

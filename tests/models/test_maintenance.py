"""Announced maintenance: its components do not page while it runs."""

from __future__ import annotations

from models.config import PipelineConfig
from models.correlate import CorrelateStage
from models.impact import Business
from models.incident import IncidentEvent
from models.maintenance import MaintenanceWindow
from models.pipeline import DetectionPipeline
from models.topology import Topology
from tests.models.test_pipeline import T0, WORLD, batch


def pipeline(business_data, *maintenance):
    cfg = PipelineConfig(resolve_after_s=120.0, reopen_within_s=0.0, maintenance=maintenance)
    return DetectionPipeline(Topology.from_dict(WORLD), Business.from_dict(business_data), cfg)


def feed(p, start, end, **faults):
    events = []
    for t in range(int(start), int(end), 5):
        for msg in batch(float(t), **faults):
            events.extend(p.process(msg))
    return [e for e in events if isinstance(e, IncidentEvent)]


def test_the_same_fault_pages_without_announcement(business_data):
    p = pipeline(business_data)
    feed(p, T0, T0 + 900)
    assert feed(p, T0 + 900, T0 + 1200, api_errors=0.3, db_latency=400.0)


def test_announced_components_do_not_page_during_their_window(business_data):
    window = MaintenanceWindow(("api", "db"), T0 + 900, T0 + 1500, "db migration")
    p = pipeline(business_data, window)
    feed(p, T0, T0 + 900)
    assert feed(p, T0 + 900, T0 + 1200, api_errors=0.3, db_latency=400.0) == []
    assert feed(p, T0 + 1200, T0 + 1500) == []  # recovered inside the window


def test_an_overrunning_maintenance_pages_when_its_window_ends(business_data):
    window = MaintenanceWindow(("api", "db"), T0 + 900, T0 + 1200)
    p = pipeline(business_data, window)
    feed(p, T0, T0 + 900)
    assert feed(p, T0 + 900, T0 + 1200, api_errors=0.3, db_latency=400.0) == []
    events = feed(p, T0 + 1200, T0 + 1400, api_errors=0.3, db_latency=400.0)
    opened = [e for e in events if e.kind == "opened"]
    assert opened and opened[0].at - (T0 + 1200) <= 60
    assert opened[0].incident.root_cause == "db"


def test_what_is_not_announced_still_pages(business_data):
    window = MaintenanceWindow(("db",), T0 + 900, T0 + 1500)
    p = pipeline(business_data, window)
    feed(p, T0, T0 + 900)
    events = feed(p, T0 + 900, T0 + 1200, api_errors=0.3, db_latency=400.0)
    opened = [e for e in events if e.kind == "opened"]
    assert opened
    # The announced database cannot be blamed: the api is the root cause.
    assert opened[0].incident.root_cause == "api"


def test_a_restored_correlator_follows_the_calendar_of_the_worker_restoring_it(business_data):
    """The calendar is configuration, not learned state: an edit made while a
    worker was down applies to the state it restores."""
    topology = Topology.from_dict(WORLD)
    before = CorrelateStage(topology, Business.from_dict(business_data), PipelineConfig())
    window = MaintenanceWindow(("db",), T0, T0 + 600, "CHG-1")
    restored = CorrelateStage.restore(
        before.snapshot(), topology, PipelineConfig(maintenance=(window,))
    )
    assert restored.config.maintenance == (window,)
    assert b"CHG-1" not in restored.snapshot()

"""The worker's web server: loopback by default, GET only, its own pages, and the counters."""

from __future__ import annotations

from infra.settings import Settings
from models.schema import REASONS
from streams import metrics
from streams.board import Board
from streams.web import operators_app

# Every path the server answers (docs/api.md), {id} for an incident's.
ROUTES = {
    "/",
    "/static/{name}",
    "/api/incidents",
    "/api/incidents/{id}",
    "/api/health",
    "/api/graph",
    "/api/stream",
    "/metrics",
    "/metrics/",
}


def test_the_web_server_binds_loopback_unless_told_otherwise():
    from streams.app import app

    assert Settings.model_fields["web_host"].default == "127.0.0.1"
    assert Settings.model_fields["web_token"].default is None
    assert app.conf.web_enabled is False  # Faust's own server and pages: off


def test_the_server_answers_its_own_routes_only():
    served = {r.resource.canonical for r in operators_app(Board()).router.routes()}
    print(f"routes served: {sorted(served)}")
    assert served == ROUTES


def test_every_route_is_documented():
    from pathlib import Path

    api = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    assert [r for r in ROUTES if f"`GET {r}`" not in api] == []


def test_the_worker_serves_its_view_as_a_service():
    from streams.app import OperatorsView, app

    assert OperatorsView in app._extra_services


def test_every_reason_has_a_counter_from_the_start():
    text = metrics.exposition().decode()
    for reason in REASONS:
        assert f'foreshock_rejected_messages_total{{reason="{reason}"}}' in text
    for sev in range(1, 5):
        assert f'foreshock_incidents_open{{sev="{sev}"}} 0.0' in text


def test_a_message_dated_ahead_of_the_workers_clock_is_refused():
    """A partition's first message has no stream to be judged by: the clock bounds it."""
    import time

    from models.schema import Telemetry
    from streams.app import ahead_of_the_clock, given

    def at(t: float) -> Telemetry:
        return Telemetry("pods", "user-svc", t, [t], {"error_rate": [0.0]})

    limit = given.config.max_ahead_s
    assert ahead_of_the_clock(at(time.time())) is None
    assert ahead_of_the_clock(at(1_664_887_505.0)) is None  # a replay of an old day
    refused = ahead_of_the_clock(at(4_000_000_000.0))  # 2096
    assert refused is not None and refused.reason == "too_far_ahead"
    assert ahead_of_the_clock(at(time.time() + limit + 60)) is not None


def test_a_snapshot_whose_event_time_is_ahead_of_the_clock_is_refused():
    import pytest

    from models.detect_stage import DetectStage
    from models.schema import Telemetry
    from models.snapshot import IncompatibleSnapshot
    from streams.app import given, restored_detectors

    def learned(t: float) -> bytes:
        stage = DetectStage(given.topology, given.config)
        stage.process(Telemetry("pods", "user-svc", t, [t], {"error_rate": [0.0]}))
        return stage.snapshot()

    assert restored_detectors(learned(1_664_887_505.0)).windows.watermark == 1_664_887_505.0
    with pytest.raises(IncompatibleSnapshot, match="ahead of this worker's clock"):
        restored_detectors(learned(3_900_000_000.0))  # 2093

"""The worker's web server: loopback by default, GET only, and the counters."""

from __future__ import annotations

import faust

from infra.settings import Settings
from models.schema import REASONS
from streams import metrics


def test_the_web_server_binds_loopback_unless_told_otherwise():
    from streams.app import app, settings

    assert Settings.model_fields["web_host"].default == "127.0.0.1"
    assert app.conf.web_bind == settings.web_host


def test_every_page_is_read_only():
    from streams.app import app

    app.web.init_server()  # mounts Faust's own pages beside ours
    assert "/metrics/" in app.web.views
    for path, view in app.web.views.items():
        for method in ("post", "put", "patch", "delete"):
            # Faust's View answers 405 to a method a page does not define.
            assert getattr(type(view), method) is getattr(faust.web.View, method), (path, method)


def test_the_worker_serves_its_own_pages_only():
    from streams.app import app

    app.web.init_server()
    served = sorted(app.web.views)
    print(f"routes served: {served}")
    # "/" is Faust's status page: {"status": "OK"}, nothing else.
    assert served == ["/", "/metrics/"]


def test_every_reason_has_a_counter_from_the_start():
    text = metrics.exposition().decode()
    for reason in REASONS:
        assert f'foreshock_rejected_messages_total{{reason="{reason}"}}' in text


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

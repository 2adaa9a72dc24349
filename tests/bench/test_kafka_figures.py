"""``foreshock bench kafka``'s figures that need no broker: the correlator's
ceiling over window reports as a worker writes them, and the table."""

from __future__ import annotations

import orjson

from bench.kafka import correlator_ceiling
from foreshock.cli.render import kafka_table
from models.config import PipelineConfig
from models.detect_stage import DetectStage
from models.report import WindowReport
from models.schema import Telemetry
from producers.sources import Simulator
from streams.app import FORWARDED
from tests.conftest import short_span


def test_the_correlator_takes_every_report_and_only_reports(topology, business, scenarios):
    scenario = scenarios["reference-2022-10-04"]
    since, until = short_span(scenario)
    stage = DetectStage(topology, PipelineConfig())
    raws = []
    for message in Simulator(scenario, topology, business, 1, since=since, until=until).messages():
        if not isinstance(message, Telemetry):
            continue
        decided = stage.process(message)
        assert isinstance(decided, list)
        raws += [orjson.dumps(d.to_dict()) for d in decided if isinstance(d, WindowReport)]
    reports = len(raws)
    assert reports > 100  # a window a source, every 10 s, for 45 min
    # A change the workers forward shares the topic; it is not a report.
    forwarded = FORWARDED + b'{"component": "user-svc"}}'
    count, seconds = correlator_ceiling([*raws, forwarded], topology, business)
    assert (count, seconds > 0) == (reports, True)


def test_the_table_says_how_many_workers_and_the_correlators_ceiling():
    result = {
        "workers": 2,
        "partitions": 6,
        "samples": 1000,
        "messages": 40,
        "samples_per_s": 60_000,
        "bare_consumer_samples_per_s": 4_000_000,
        "ratio": 0.015,
        "passthrough_agent_samples_per_s": 125_000,
        "ratio_to_passthrough_agent": 0.48,
        "embedded_samples_per_s": 450_000,
        "ratio_embedded_to_bare_consumer": 0.1,
        "ratio_to_embedded": 0.133,
        "reports": 55_923,
        "reports_per_s": 265.4,
        "correlator_reports_per_s": 22_121,
        "lag_samples_per_s": 32_000,
        "lag_p50_ms": 171.2,
        "lag_p99_ms": 1809.8,
        "lag_windows": 6578,
    }
    rows = dict(zip(*(c._cells for c in kafka_table(result, "t", 50).columns), strict=True))
    assert rows["2 workers, in total, end to end (6 partitions)"] == "60,000 samples/s"
    assert rows["ratio 2 workers, in total / those"] == "0.133"
    assert rows["one correlator's ceiling, in process"] == "22,121 reports/s"
    assert rows["window reports to the correlator"] == "55,923 (265/s in this run)"

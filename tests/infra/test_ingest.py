"""Outside series into Foreshock's telemetry: the mapping's checks, counters
across resets and requests, shares, histograms, and what is dropped why."""

from __future__ import annotations

import re

import pytest

from infra.ingest.mapping import MappingError, from_dict
from infra.ingest.translate import Kind, Series, Translator
from infra.settings import Settings

T0 = 1_700_000_000.0


def translator(*rules: dict[str, object]) -> Translator:
    return Translator(from_dict({"map": list(rules)}))


def columns(t: Translator) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for message in t.flush():
        for metric, values in message.metrics.items():
            out.setdefault((message.entity, metric), []).extend(values)
    return out


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ({"to": "redis", "entity": "r", "from": "x"}, "map[0].to: redis has no metric ''"),
        ({"to": "social.mention_rate", "entity": "r", "from": "x"}, "map[0].to: 'social' is"),
        ({"to": "pods.error_rate", "entity": "e", "from": "x", "wher": {}}, "map[0].wher: not a"),
        (
            {"to": "pods.error_rate", "entity": "e", "from": "x", "where": {"c": "("}},
            "map[0].where.c",
        ),
        ({"to": "pods.error_rate", "entity": "e", "from": "x", "scale": 0}, "map[0].scale"),
        (
            {"to": "pods.p99_latency_ms", "entity": "e", "from": "h", "quantile": 0.99},
            "map[0].quantile",
        ),
    ],
)
def test_a_bad_rule_is_named_by_its_key(rule: dict[str, object], why: str) -> None:
    with pytest.raises(MappingError, match="^" + re.escape(why)):
        from_dict({"map": [rule]})


def test_the_shipped_mapping_loads_and_adds_its_metrics() -> None:
    mapping = Settings().load_mapping()
    assert len(mapping.rules) >= 20
    assert mapping.metrics["pods"]["memory_used_ratio"].limit == 1.0
    with pytest.raises(MappingError, match=re.escape("metrics.pods.error_rate: pods has")):
        from_dict({"metrics": {"pods": {"error_rate": {"floor": 0.1}}}})


def test_a_counter_becomes_a_rate_across_resets_and_requests() -> None:
    t = translator({"to": "pods.request_rate", "entity": "{job}", "from": "http_requests_total"})
    job = dict(job="user-svc")
    for ts, total in [(T0, 100.0), (T0 + 2, 300.0), (T0 + 4, 50.0), (T0 + 3, 10.0)]:
        t.add(Series.of("http_requests_total", job, [(ts, total, 0.0)], Kind.CUMULATIVE))
    assert columns(t) == {("user-svc", "request_rate"): [100.0, 25.0]}
    assert t.dropped == {"out_of_order": 1}


def test_a_wire_counter_counts_what_happened_between_samples() -> None:
    # logins.attempts is a count per sample on the wire: the rate times the span.
    t = translator(
        {
            "to": "logins.attempts",
            "entity": "logins/{region}/{client}",
            "from": "login_attempts_total",
        }
    )
    region = dict(region="eu-west", client="mobile")
    for ts, total in [(T0, 0.0), (T0 + 1, 10.0), (T0 + 3, 50.0)]:
        t.add(Series.of("login_attempts_total", region, [(ts, total, 0.0)], Kind.CUMULATIVE))
    assert columns(t) == {("logins/eu-west/mobile", "attempts"): [40.0]}


def test_a_share_is_zero_until_its_first_failing_series() -> None:
    t = translator(
        {
            "to": "pods.error_rate",
            "entity": "{job}",
            "from": "http_requests_total",
            "where": {"code": "5.."},
            "over": "http_requests_total",
        }
    )
    for ts, ok, failed in [
        (T0, 0.0, None),
        (T0 + 1, 100.0, None),
        (T0 + 2, 190.0, 0.0),
        (T0 + 3, 270.0, 20.0),
    ]:
        t.add(
            Series.of(
                "http_requests_total", dict(job="a", code="200"), [(ts, ok, 0.0)], Kind.CUMULATIVE
            )
        )
        if failed is not None:
            t.add(
                Series.of(
                    "http_requests_total",
                    dict(job="a", code="503"),
                    [(ts, failed, 0.0)],
                    Kind.CUMULATIVE,
                )
            )
    assert columns(t) == {("a", "error_rate"): [0.0, 0.0, 0.2]}


def test_a_quantile_of_prometheus_buckets_summed_over_series() -> None:
    t = translator(
        {
            "to": "pods.p99_latency_ms",
            "entity": "{job}",
            "from": "h_bucket",
            "quantile": 0.5,
            "scale": 1000.0,
        }
    )
    for ts, scale in [(T0, 0.0), (T0 + 1, 1.0)]:
        for pod in ("p1", "p2"):
            for le, count in [("0.1", 5.0), ("0.2", 15.0), ("+Inf", 20.0)]:
                bucket = dict(job="api-gateway", pod=pod, le=le)
                t.add(Series.of("h_bucket", bucket, [(ts, count * scale, 0.0)], Kind.CUMULATIVE))
    assert columns(t) == {("api-gateway", "p99_latency_ms"): [pytest.approx(150.0)]}


def test_delta_sums_and_what_is_dropped() -> None:
    t = translator({"to": "redis.ops_per_s", "entity": "redis/{instance}", "from": "ops"})
    t.add(Series.of("ops", dict(instance="node-01"), [(T0 + 2, 50.0, T0)], Kind.DELTA))
    t.add(Series.of("ops", dict(instance="node-01"), [(T0 + 2, 50.0, T0 + 3)], Kind.DELTA))
    t.add(Series.of("ops", dict(job="no instance"), [(T0, 1.0, 0.0)], Kind.DELTA))
    t.add(Series.of("other", {}, [(T0, 1.0, 0.0)]))
    assert columns(t) == {("redis/node-01", "ops_per_s"): [25.0]}
    assert t.dropped == {"bad_interval": 1, "missing_label": 1, "unmapped": 1}


def test_an_entity_outside_the_topology_is_dropped_by_reason() -> None:
    topology = Settings().load_topology()
    t = Translator(
        from_dict(
            {
                "map": [
                    {
                        "to": "redis.connected_clients",
                        "entity": "redis/{instance}",
                        "from": "redis_connected_clients",
                    }
                ]
            }
        ),
        topology.knows,
    )
    for node in ("node-01", "elsewhere"):
        t.add(Series.of("redis_connected_clients", dict(instance=node), [(T0, 7.0, 0.0)]))
    assert columns(t) == {("redis/node-01", "connected_clients"): [7.0]}
    assert t.dropped == {"unknown_entity": 1}

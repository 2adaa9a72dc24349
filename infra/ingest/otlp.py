"""OpenTelemetry metrics (OTLP): an ``ExportMetricsServiceRequest``, as
protobuf (OTLP/HTTP, and the Collector's kafka exporter with encoding
``otlp_proto``) or as OTLP's JSON.

A data point's labels are its resource's attributes, its scope's and its
own, the more specific winning. A histogram becomes the series Prometheus
would make of it: ``NAME_count``, ``NAME_sum`` and ``NAME_bucket`` by ``le``,
so that one rule reads a histogram from either source.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from infra.ingest.remote_write import BadBody
from infra.ingest.translate import Kind, Series

DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


def decode(body: bytes, json: bool, max_points: int, max_label: int) -> ExportMetricsServiceRequest:
    """Parse a request, refusing what is not OTLP or breaks the limits."""
    try:
        if json:
            request = json_format.Parse(
                body, ExportMetricsServiceRequest(), ignore_unknown_fields=True
            )
        else:
            request = ExportMetricsServiceRequest.FromString(body)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        reason = "not_json" if json else "not_protobuf"
        raise BadBody(reason, f"not an ExportMetricsServiceRequest: {exc}") from None
    count = points(request)
    if count > max_points:
        raise BadBody("too_many_series", f"{count:,} data points; at most {max_points:,}")
    for rm in request.resource_metrics:
        _check_attributes(rm.resource.attributes, max_label)
        for _, data in _data(rm):
            for p in data.data_points:
                _check_attributes(p.attributes, max_label)
    return request


def points(request: ExportMetricsServiceRequest) -> int:
    """Data points in the request."""
    return sum(len(data.data_points) for rm in request.resource_metrics for _, data in _data(rm))


def _data(rm: Any) -> Iterator[tuple[Any, Any]]:
    """Each metric of a resource's, with its data (gauge, sum, histogram...)."""
    for sm in rm.scope_metrics:
        for metric in sm.metrics:
            kind = metric.WhichOneof("data")
            if kind is not None:
                yield metric, getattr(metric, kind)


def _check_attributes(attributes: Iterable[Any], max_label: int) -> None:
    for kv in attributes:
        if len(kv.key) > max_label or len(_text(kv.value)) > max_label:
            raise BadBody("label_too_long", f"attribute {kv.key[:40]!r} is too long")


def _text(value: Any) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


def _labels(attributes: Iterable[Any]) -> dict[str, str]:
    return {kv.key: _text(kv.value) for kv in attributes}


def series(request: ExportMetricsServiceRequest) -> Iterator[Series]:
    """Every data point of the request, as outside series (times in seconds)."""
    for rm in request.resource_metrics:
        resource = _labels(rm.resource.attributes)
        for metric, _ in _data(rm):
            yield from _metric_series(metric, resource)


def _metric_series(metric: Any, resource: dict[str, str]) -> Iterator[Series]:
    kind = metric.WhichOneof("data")
    if kind == "gauge" or (kind == "sum" and not metric.sum.is_monotonic):
        for p in getattr(metric, kind).data_points:
            yield Series.of(metric.name, resource | _labels(p.attributes), [_point(p)])
    elif kind == "sum":
        counting = Kind.DELTA if metric.sum.aggregation_temporality == DELTA else Kind.CUMULATIVE
        for p in metric.sum.data_points:
            yield Series.of(metric.name, resource | _labels(p.attributes), [_point(p)], counting)
    elif kind == "histogram":
        h = metric.histogram
        counting = Kind.DELTA if h.aggregation_temporality == DELTA else Kind.CUMULATIVE
        for p in h.data_points:
            labels = resource | _labels(p.attributes)
            ts, start = p.time_unix_nano / 1e9, p.start_time_unix_nano / 1e9
            yield Series.of(f"{metric.name}_count", labels, [(ts, float(p.count), start)], counting)
            yield Series.of(f"{metric.name}_sum", labels, [(ts, p.sum, start)], counting)
            below = 0
            bounds = [*p.explicit_bounds, math.inf]
            for bound, count in zip(bounds, p.bucket_counts, strict=False):
                below += count
                le = "+Inf" if math.isinf(bound) else repr(float(bound))
                yield Series.of(
                    f"{metric.name}_bucket",
                    labels | {"le": le},
                    [(ts, float(below), start)],
                    counting,
                )
    else:  # exponential histograms and summaries: no rule reads them (counted unmapped)
        for p in getattr(metric, kind).data_points:
            point = [(p.time_unix_nano / 1e9, 0.0, 0.0)]
            yield Series.of(f"{metric.name} ({kind})", resource, point)


def _point(p: Any) -> tuple[float, float, float]:
    value = p.as_double if p.WhichOneof("value") == "as_double" else float(p.as_int)
    return p.time_unix_nano / 1e9, value, p.start_time_unix_nano / 1e9

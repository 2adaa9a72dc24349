"""Prometheus remote_write 1.0 bodies: snappy-compressed protobuf WriteRequests.

Prometheus sends each series' metadata elsewhere (or not at all), so whether
a series is a counter is read from its name, as Prometheus's own naming
rules have it: ``_total``, ``_count``, ``_sum`` and ``_bucket`` count up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial

import cramjam
from google.protobuf.message import DecodeError

from infra.ingest.remote_write_pb2 import Label, WriteRequest
from infra.ingest.translate import Description, Kind, Series

COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
# Limits of one body, by default: Prometheus sends 2,000 samples a body.
MAX_SERIES = 50_000
MAX_LABEL = 4096  # characters of a label's name or value


class BadBody(ValueError):
    """A body that is not what the protocol says; ``reason`` names the kind."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def decode(body: bytes, max_bytes: int, max_series: int) -> WriteRequest:
    """Uncompress and parse a body, refusing what breaks the protocol or the limits."""
    try:
        size = cramjam.snappy.decompress_raw_len(body)
    except cramjam.DecompressionError as exc:
        raise BadBody("not_snappy", f"not snappy block compression: {exc}") from None
    if size > max_bytes:
        raise BadBody("too_large", f"{size:,} bytes uncompressed; at most {max_bytes:,}")
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
        request = WriteRequest.FromString(raw)
    except cramjam.DecompressionError as exc:
        raise BadBody("not_snappy", f"not snappy block compression: {exc}") from None
    except DecodeError as exc:
        raise BadBody("not_protobuf", f"not a WriteRequest: {exc}") from None
    if len(request.timeseries) > max_series:
        raise BadBody(
            "too_many_series", f"{len(request.timeseries):,} series; at most {max_series:,}"
        )
    return request


def series(request: WriteRequest, max_label: int) -> Iterator[Series]:
    """Every time series of the request, with its samples in seconds. A
    series is known by its labels' bytes; a new one's are decoded, and one
    longer than ``max_label`` raises ``BadBody``."""
    for ts in request.timeseries:
        key = tuple(ts.labels)
        points = [(s.timestamp / 1000.0, s.value, 0.0) for s in ts.samples]
        yield Series(key, points, partial(describe, key, max_label))


def describe(labels: tuple[bytes, ...], max_label: int) -> Description:
    """A series' name, labels and kind, from its labels' bytes."""
    if max(map(len, labels), default=0) > 2 * max_label:
        raise BadBody("label_too_long", f"a label is longer than {max_label:,} characters")
    try:
        pairs = [Label.FromString(raw) for raw in labels]
    except DecodeError as exc:
        raise BadBody("not_protobuf", f"a label that is not one: {exc}") from None
    if any(len(p.name) > max_label or len(p.value) > max_label for p in pairs):
        raise BadBody("label_too_long", f"a label is longer than {max_label:,} characters")
    named = {p.name: p.value for p in pairs}
    name = named.get("__name__", "")
    kind = Kind.CUMULATIVE if name.endswith(COUNTER_SUFFIXES) else Kind.GAUGE
    return Description(name, named, kind)


def body(series: Iterable[tuple[dict[str, str], Iterable[tuple[float, float]]]]) -> bytes:
    """A remote_write body as Prometheus sends one: each series' labels
    (``__name__`` among them) and samples ``(seconds, value)``, as protobuf
    in a snappy block.

    >>> request = decode(body([({"__name__": "up"}, [(1.5, 1.0)])]), 1 << 20, 10)
    >>> [(s.key, s.points) for s in series(request, 100)]
    [((b'\\n\\x08__name__\\x12\\x02up',), [(1.5, 1.0, 0.0)])]
    """
    request = WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        ts.labels.extend(
            Label(name=name, value=value).SerializeToString()
            for name, value in sorted(labels.items())
        )
        for at, value in samples:
            ts.samples.add(timestamp=round(at * 1000), value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))

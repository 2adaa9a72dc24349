"""Telemetry from outside: a Prometheus remote_write body or an OpenTelemetry
metrics request, translated by a mapping (``infra.ingest``).

Each body is a finite source. The translator is shared by every body of a
stream, since counters become rates against the values it kept from the
bodies before.
"""

from __future__ import annotations

from collections.abc import Iterator

from infra.ingest import otlp, remote_write
from infra.ingest.translate import Translator
from models.schema import Telemetry
from producers.sources.base import Source


class RemoteWrite(Source):
    """A remote_write body, checked against the limits when made
    (``infra.ingest.BadBody`` if it breaks the protocol or a limit), and
    for the length of its labels as they are read."""

    def __init__(
        self,
        body: bytes,
        translator: Translator,
        *,
        max_bytes: int,
        max_series: int,
        max_label: int,
    ) -> None:
        self.request = remote_write.decode(body, max_bytes, max_series)
        self.translator = translator
        self.max_label = max_label

    @property
    def points(self) -> int:
        return sum(len(ts.samples) for ts in self.request.timeseries)

    def messages(self) -> Iterator[Telemetry]:
        yield from self.translator.translate(remote_write.series(self.request, self.max_label))


class Otlp(Source):
    """An OTLP ``ExportMetricsServiceRequest``, protobuf or JSON."""

    def __init__(
        self,
        body: bytes,
        translator: Translator,
        *,
        json: bool = False,
        max_series: int,
        max_label: int,
    ) -> None:
        self.request = otlp.decode(body, json, max_series, max_label)
        self.translator = translator

    @property
    def points(self) -> int:
        return otlp.points(self.request)

    def messages(self) -> Iterator[Telemetry]:
        yield from self.translator.translate(otlp.series(self.request))

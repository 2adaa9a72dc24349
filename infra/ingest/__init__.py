"""Outside telemetry in: Prometheus remote_write and OpenTelemetry metrics,
translated into Foreshock's telemetry by a mapping file."""

from infra.ingest.mapping import Mapping, MappingError
from infra.ingest.remote_write import MAX_LABEL, MAX_SERIES, BadBody
from infra.ingest.translate import DROP_REASONS, Kind, Series, Translator

__all__ = [
    "DROP_REASONS",
    "MAX_LABEL",
    "MAX_SERIES",
    "BadBody",
    "Kind",
    "Mapping",
    "MappingError",
    "Series",
    "Translator",
]

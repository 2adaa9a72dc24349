"""Events as JSON-ready dicts: the one place they are serialised for sinks."""

from __future__ import annotations

from typing import Any

from models.detect import Anomaly
from models.gaps import TelemetryGap
from models.incident import IncidentEvent
from models.pipeline import Event
from models.trend import CreepWarning, ExhaustionWarning


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready form of any event, tagged with its type."""
    if isinstance(event, IncidentEvent):
        return {
            "type": "incident",
            "kind": event.kind,
            "at": event.at,
            "text": event.text,
            **event.incident.to_dict(),
        }
    body = {s: getattr(event, s) for s in event.__slots__}
    return {"type": type(event).__name__, **body}


# The events a sink writes flat (every field at the top), by their type tag.
_FLAT = {cls.__name__: cls for cls in (Anomaly, ExhaustionWarning, CreepWarning, TelemetryGap)}


def event_from_dict(body: dict[str, Any]) -> Event | None:
    """The event back from ``event_to_dict``'s form, for the flat kinds
    (anomalies, warnings, gaps); None for any other.

    >>> a = Anomaly("redis/node-01", "latency_ms", 10.0, 20.0, 9.0, 1.0, 8.0)
    >>> event_from_dict(event_to_dict(a)) == a
    True
    """
    cls = _FLAT.get(body.get("type", ""))
    if cls is None:
        return None
    return cls(**{k: v for k, v in body.items() if k != "type"})

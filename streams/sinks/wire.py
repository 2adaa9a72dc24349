"""Events as JSON-ready dicts: the one place they are serialised for sinks."""

from __future__ import annotations

from typing import Any

from models.incident import IncidentEvent
from models.pipeline import Event


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

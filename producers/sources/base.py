"""The source contract: where telemetry comes from.

A source yields ``models.schema.Telemetry`` messages, and the change events
(``models.changes.ChangeEvent``: deploys, config pushes...) among them, in
the order they are delivered (which a late or jittered source may make differ from event-time
order: the engines sort that out, as they would for a real feed). The engines
and ``foreshock produce`` only read ``messages()``.
"""

from __future__ import annotations

from collections.abc import Iterator

from models.changes import ChangeEvent
from models.schema import Telemetry


class Source:
    """Yields telemetry and change events. Subclasses implement ``messages``."""

    def messages(self) -> Iterator[Telemetry | ChangeEvent]:
        """Every message, in delivery order; a finite source stops at its end."""
        raise NotImplementedError

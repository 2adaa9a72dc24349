"""The sink contract: where an engine sends what the models decide.

Both engines use it. The embedded engine calls ``emit`` for every event and
``close`` at the end; the Faust app also awaits ``drain`` before it
snapshots, so that nothing a snapshot covers is still on its way.
"""

from __future__ import annotations

from models.pipeline import Event


class Sink:
    """Takes events one at a time. Subclasses implement ``emit``; a sink that
    buffers or sends over a network also implements ``drain``."""

    def emit(self, event: Event) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait until every event emitted so far is delivered."""

    def close(self) -> None:
        """Release what the sink holds (files, connections)."""

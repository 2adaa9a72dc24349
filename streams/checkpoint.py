"""Model state that survives restarts and rebalances, and the offsets it covers.

A worker folds a partition's messages into in-memory model state and, now and
then, writes a snapshot of that state, with the offset up to which it holds
every message, to a changelog-backed table. A message is acknowledged only
once a snapshot covers it, and a snapshot is written only once what those
messages made (reports, anomalies, incident changes, dead letters) has been
delivered. Whoever resumes the partition, after a crash or a
rebalance, restores the snapshot and takes messages strictly in offset order
from the one after it: those it already holds are skipped. Messages are
acknowledged in offset order too, so the committed offset never passes a
message the snapshot lacks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from models.snapshot import IncompatibleSnapshot

OFFSET_BYTES = 8


class Snapshotting(Protocol):
    def snapshot(self) -> bytes: ...

    @property
    def done(self) -> float:
        """How far the state has done what it was given: a message ``due``
        later than this still waits (see ``Checkpointed.covered``)."""
        ...


S = TypeVar("S", bound=Snapshotting)


def pack(offset: int, state: Snapshotting) -> bytes:
    """
    >>> class Blob:
    ...     def snapshot(self) -> bytes: return b"state"
    >>> unpack(pack(41, Blob()))
    (41, b'state')
    """
    return offset.to_bytes(OFFSET_BYTES, "big", signed=True) + state.snapshot()


def unpack(blob: bytes) -> tuple[int, bytes]:
    return int.from_bytes(blob[:OFFSET_BYTES], "big", signed=True), blob[OFFSET_BYTES:]


class Next(Enum):
    """What to do with a delivered message, given the offsets the state holds."""

    FOLD = "fold"  # the next message the state lacks
    SEEN = "seen"  # already in the state: acknowledge and skip
    GAP = "gap"  # messages before it never reached the state


@dataclass
class Checkpointed(Generic[S]):
    """The live state of one partition and the messages awaiting a snapshot."""

    state: S
    offset: int = -1  # every message up to this offset is in ``state``
    # (offset, event, due), in offset order; see ``covered`` for ``due``.
    unacked: list[tuple[int, Any, float]] = field(default_factory=list)
    # Deliveries of what the messages taken made (reports, incidents): a
    # snapshot that says they are done may land only after them.
    sent: list[Awaitable[Any]] = field(default_factory=list)
    changes: int = 0  # decisions since the last snapshot
    saved: int = -1  # the offset the last snapshot written (or restored) covers
    refused: str | None = None  # why the snapshot found could not be restored

    def place(self, offset: int) -> Next:
        """Where a delivered message stands against the state."""
        if offset <= self.offset:
            return Next.SEEN
        return Next.FOLD if offset == self.offset + 1 else Next.GAP

    @classmethod
    def resume(
        cls, blob: bytes | None, restore: Callable[[bytes], S], fresh: Callable[[], S]
    ) -> Checkpointed[S]:
        if blob is None:
            return cls(fresh())
        offset, snapshot = unpack(blob)
        try:
            return cls(restore(snapshot), offset, saved=offset)
        except IncompatibleSnapshot as exc:
            # The messages it covered are acknowledged already: replaying them
            # would decide their windows twice. Go on after them, learning anew.
            return cls(fresh(), offset, saved=offset, refused=str(exc))

    def take(self, event: Any, offset: int, due: float = float("-inf")) -> None:
        self.offset = offset
        self.unacked.append((offset, event, due))

    def hold(self, event: Any, offset: int) -> bool:
        """Keep a redelivered message for the next snapshot, unless the last
        one already covers it (then it may be acknowledged now)."""
        if offset <= self.saved:
            return False
        self.unacked.append((offset, event, float("-inf")))
        return True

    def covered(self) -> int:
        """The offset up to which a restored state needs nothing redelivered.

        A message taken is covered once folded in, unless it is ``due`` at a
        later step (a window report, until its window is correlated): then
        only once the state is ``done`` up to its due. Offsets after the first
        message not yet covered are redelivered, so they are not covered either.
        """
        done = self.state.done
        waiting = (offset for offset, _, due in self.unacked if due > done)
        return min(waiting, default=self.offset + 1) - 1

    def pending(self) -> bool:
        """Whether a snapshot now would let a message be acknowledged."""
        return bool(self.unacked) and self.unacked[0][0] <= self.covered()

    def checkpoint(self) -> tuple[bytes, list[Any], list[Awaitable[Any]]]:
        """A snapshot to write, the deliveries to wait for before writing it,
        and the events it lets us acknowledge once written. Events after the
        offset it covers stay unacknowledged, for a later one.
        """
        self.saved = self.covered()
        acked = [event for offset, event, _ in self.unacked if offset <= self.saved]
        self.unacked = [entry for entry in self.unacked if entry[0] > self.saved]
        sent, self.sent, self.changes = self.sent, [], 0
        return pack(self.saved, self.state), acked, sent

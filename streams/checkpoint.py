"""Model state that survives restarts and rebalances, and the offsets it covers.

A worker folds a partition's messages into in-memory model state and, now and
then, writes a snapshot of that state, with the offset of the last message in
it, to a changelog-backed table. A message is acknowledged (its offset may be
committed) only once a snapshot covers it. So whoever resumes the partition,
after a crash or a rebalance, restores the snapshot and is redelivered exactly
the messages the snapshot lacks; the ones it already holds are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

OFFSET_BYTES = 8


class Snapshotting(Protocol):
    def snapshot(self) -> bytes: ...


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


@dataclass
class Checkpointed(Generic[S]):
    """The live state of one partition and the messages awaiting a snapshot."""

    state: S
    offset: int = -1  # of the last message folded into ``state``
    unacked: list[Any] = field(default_factory=list)  # events, in offset order
    changes: int = 0  # decisions since the last snapshot

    @classmethod
    def resume(
        cls, blob: bytes | None, restore: Callable[[bytes], S], fresh: Callable[[], S]
    ) -> Checkpointed[S]:
        if blob is None:
            return cls(fresh())
        offset, snapshot = unpack(blob)
        return cls(restore(snapshot), offset)

    def seen(self, offset: int) -> bool:
        """Whether a redelivered message is already folded into the state."""
        return offset <= self.offset

    def take(self, event: Any, offset: int) -> None:
        self.offset = offset
        self.unacked.append(event)

    def checkpoint(self) -> tuple[bytes, list[Any]]:
        """A snapshot to write, and the events it lets us acknowledge."""
        events, self.unacked, self.changes = self.unacked, [], 0
        return pack(self.offset, self.state), events

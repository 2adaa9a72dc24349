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

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

import orjson

from models.snapshot import IncompatibleSnapshot

OFFSET_BYTES = 8
# A snapshot is written as records of at most this many bytes, well under
# the 1 MB a Kafka request or a topic's message takes by default: the state
# of a partition grows with its series (about 1 KB each), a record must not.
CHUNK_BYTES = 256 * 1024


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


class BrokenSnapshot(Exception):
    """A snapshot whose records cannot be put together again (one missing,
    or not what its manifest says); ``offset`` is the offset it covered."""

    def __init__(self, offset: int, why: str) -> None:
        super().__init__(why)
        self.offset = offset


def _chunk_key(source: str, version: int, n: int) -> str:
    return f"{source}/{version}/{n}"


def snapshot_records(
    source: str, version: int, blob: bytes, size: int = CHUNK_BYTES
) -> list[tuple[str, bytes]]:
    """The records that store one snapshot (``pack``'s bytes) of ``source``:
    its chunks, each under a key of this version's own, then the manifest
    under the source's key, which names them. Written in that order, the
    manifest only ever names chunks that landed.

    >>> records = snapshot_records("pods:3", 7, b"0123456789", size=4)
    >>> [(key, len(value)) for key, value in records[:3]]
    [('pods:3/7/0', 4), ('pods:3/7/1', 4), ('pods:3/7/2', 2)]
    >>> read_snapshot(dict(records), "pods:3")
    (b'0123456789', 7)
    """
    chunks = [blob[i : i + size] for i in range(0, len(blob), size)] or [b""]
    manifest = {
        "version": version,
        "offset": unpack(blob)[0],
        "chunks": len(chunks),
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    records = [(_chunk_key(source, version, n), chunk) for n, chunk in enumerate(chunks)]
    return [*records, (source, orjson.dumps(manifest))]


def read_snapshot(stored: Mapping[str, bytes], source: str) -> tuple[bytes | None, int]:
    """The snapshot of ``source`` (``pack``'s bytes; None if there is none)
    put together from the stored records, and its version; a snapshot that
    cannot be is ``BrokenSnapshot``.

    A record that is no manifest (JSON objects start with ``{``, an offset's
    first byte never does) is a whole snapshot, as they were written before.

    >>> read_snapshot({"pods:3": pack(5, _Bytes(b"x"))}, "pods:3")
    (b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x05x', 0)
    >>> records = dict(snapshot_records("pods:3", 2, pack(5, _Bytes(b"state")), size=4))
    >>> del records["pods:3/2/1"]
    >>> read_snapshot(records, "pods:3")
    Traceback (most recent call last):
    ...
    streams.checkpoint.BrokenSnapshot: snapshot version 2 lacks record 1 of 4
    """
    record = stored.get(source)
    if record is None:
        return None, 0
    if not record.startswith(b"{"):
        return record, 0
    version, offset, chunks, size, digest = _manifest(record)
    parts = []
    for n in range(max(chunks, 0)):
        part = stored.get(_chunk_key(source, version, n))
        if part is None:
            raise BrokenSnapshot(offset, f"snapshot version {version} lacks record {n} of {chunks}")
        parts.append(part)
    blob = b"".join(parts)
    if len(blob) != size or hashlib.sha256(blob).hexdigest() != digest:
        raise BrokenSnapshot(offset, f"snapshot version {version} is not what its manifest says")
    return blob, version


def _manifest(record: bytes) -> tuple[int, int, int, int, str]:
    """A manifest's version, offset covered, chunks, bytes and SHA-256."""
    try:
        m = orjson.loads(record)
        return int(m["version"]), int(m["offset"]), int(m["chunks"]), int(m["bytes"]), m["sha256"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BrokenSnapshot(-1, f"a snapshot manifest that cannot be read ({exc!r})") from exc


def _version(stored: Mapping[str, bytes], source: str) -> int:
    """The version of the latest snapshot of ``source``, read from its manifest
    alone (0: none, or one written whole; -1 is never a version)."""
    record = stored.get(source)
    if record is None or not record.startswith(b"{"):
        return 0
    try:
        return _manifest(record)[0]
    except BrokenSnapshot:
        return 0


class SnapshotTable(Protocol):
    """What ``SnapshotStore`` needs of a Faust table: its data, and its changelog."""

    @property
    def data(self) -> Any: ...

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any: ...


class SnapshotStore:
    """The snapshots of an agent's partitions, in a changelog-backed table,
    written as records of at most ``CHUNK_BYTES`` and read back whole or not
    at all."""

    def __init__(self, table: SnapshotTable, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.table = table
        self.chunk_bytes = chunk_bytes

    def read(self, source: str) -> bytes | None:
        """The latest snapshot of ``source``; ``BrokenSnapshot`` if it cannot be put together."""
        return read_snapshot(self.table.data, source)[0]

    async def write(self, source: str, blob: bytes) -> list[int]:
        """Land a snapshot: its chunks, then its manifest, then delete the
        records of the one it replaces. Returns the sizes of its records."""
        # The manifest alone: putting the last snapshot together (megabytes,
        # hashed) on every write would be work for nothing.
        version = _version(self.table.data, source) + 1
        partition = int(source.rpartition(":")[2])
        *chunks, manifest = snapshot_records(source, version, blob, self.chunk_bytes)
        await self._send(partition, chunks)
        await self._send(partition, [manifest])
        data = self.table.data
        for key, value in (*chunks, manifest):
            data[key] = value
        current = {key for key, _ in chunks}
        stale = [k for k in data if k.startswith(f"{source}/") and k not in current]
        await self._send(partition, [(key, None) for key in stale])
        for key in stale:
            data.pop(key, None)
        return [len(value) for _, value in (*chunks, manifest)]

    async def _send(self, partition: int, records: Iterable[tuple[str, bytes | None]]) -> None:
        # A value of None is a tombstone: compaction drops the key.
        sent = [
            self.table.send_changelog(partition, key, value, value_serializer="raw")
            for key, value in records
        ]
        await asyncio.gather(*sent)


class _Bytes:
    """A state that is already bytes (for the examples)."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def snapshot(self) -> bytes:
        return self.blob


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
            return cls.refuse(offset, str(exc), fresh)

    @classmethod
    def refuse(cls, offset: int, why: str, fresh: Callable[[], S]) -> Checkpointed[S]:
        """Fresh state after a snapshot that covered ``offset`` was refused.

        The messages it covered are acknowledged already: replaying them
        would decide their windows twice. Go on after them, learning anew.
        """
        return cls(fresh(), offset, saved=offset, refused=why)

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

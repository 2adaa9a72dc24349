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


def _cuts(blob: bytes, size: int) -> list[memoryview]:
    """``blob`` cut into chunks of at most ``size`` bytes, where its content says."""
    # Imported here: only a worker that snapshots needs the chunker.
    from pyfastcdc import FastCDC

    # Cut points found by content: a series whose state changed moves only
    # the cuts around it, so the chunks of the state that did not change
    # keep their bytes and names. Small chunks rewrite less, but the
    # manifest names every one and must stay a record well under ``size``.
    average = max(256, size // 64)
    while True:
        chunker = FastCDC(average, min_size=average // 4, max_size=size, normalized_chunking=2)
        cuts = [cut.data for cut in chunker.cut_buf(blob)]
        if len(cuts) * _NAMED <= size // 2 or average >= size // 4:
            return cuts
        average *= 2


def _digest(chunk: bytes | memoryview) -> str:
    """A chunk's name: its digest, long enough that two chunks never share one."""
    return hashlib.blake2b(chunk, digest_size=_DIGEST_BYTES).hexdigest()


_DIGEST_BYTES = 12
_NAMED = 2 * _DIGEST_BYTES + 3  # a chunk's bytes in the manifest: its digest, quoted, a comma


def snapshot_records(
    source: str, blob: bytes, size: int = CHUNK_BYTES
) -> tuple[list[tuple[str, bytes]], tuple[str, bytes]]:
    """The records that store one snapshot (``pack``'s bytes) of ``source``:
    its chunks, of at most ``size`` bytes, each under a key named by its
    content, and the manifest under the source's key, which lists them.

    A chunk already stored under its key need not be written again: a new
    snapshot writes only the chunks that changed, then its manifest.

    >>> blob = pack(7, _Bytes(bytes(range(256)) * 64))
    >>> chunks, manifest = snapshot_records("pods:3", blob, size=4096)
    >>> len(chunks) > 4 and max(len(chunk) for _, chunk in chunks) <= 4096
    True
    >>> chunks[0][0].startswith("pods:3/"), manifest[0]
    (True, 'pods:3')
    >>> read_snapshot(dict([*chunks, manifest]), "pods:3") == blob
    True
    """
    chunks = [(f"{source}/{_digest(cut)}", bytes(cut)) for cut in _cuts(blob, size)]
    manifest = {
        "offset": unpack(blob)[0],
        "bytes": len(blob),
        "chunks": [key.rpartition("/")[2] for key, _ in chunks],
    }
    return chunks, (source, orjson.dumps(manifest))


def read_snapshot(stored: Mapping[str, bytes], source: str) -> bytes | None:
    """The snapshot of ``source`` (``pack``'s bytes; None if there is none)
    put together from the stored records; one that cannot be is ``BrokenSnapshot``.

    A record that is no manifest (JSON objects start with ``{``, an offset's
    first byte never does) is a whole snapshot, as they were written before.

    >>> read_snapshot({"pods:3": pack(5, _Bytes(b"x"))}, "pods:3")
    b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x05x'
    >>> chunks, manifest = snapshot_records("pods:3", pack(5, _Bytes(b"state")))
    >>> read_snapshot(dict([manifest]), "pods:3")
    Traceback (most recent call last):
    ...
    streams.checkpoint.BrokenSnapshot: the snapshot at offset 5 lacks record 1 of 1
    """
    record = stored.get(source)
    if record is None:
        return None
    if not record.startswith(b"{"):
        return record
    offset, size, digests = _manifest(record)
    parts = []
    for n, digest in enumerate(digests):
        part = stored.get(f"{source}/{digest}")
        if part is None:
            raise BrokenSnapshot(
                offset, f"the snapshot at offset {offset} lacks record {n + 1} of {len(digests)}"
            )
        if _digest(part) != digest:
            raise BrokenSnapshot(
                offset, f"the snapshot at offset {offset}: record {n + 1} is not what it is named"
            )
        parts.append(part)
    blob = b"".join(parts)
    if len(blob) != size:
        raise BrokenSnapshot(
            offset, f"the snapshot at offset {offset} is {len(blob)} bytes, not {size}"
        )
    return blob


def snapshot_offset(stored: Mapping[str, bytes], source: str) -> int | None:
    """The offset the latest snapshot of ``source`` covers, read from its
    manifest alone (None: no snapshot; a broken manifest is ``BrokenSnapshot``).

    >>> chunks, manifest = snapshot_records("pods:3", pack(41, _Bytes(b"state")))
    >>> snapshot_offset(dict([manifest]), "pods:3")
    41
    """
    record = stored.get(source)
    if record is None:
        return None
    return _manifest(record)[0] if record.startswith(b"{") else unpack(record)[0]


def _manifest(record: bytes) -> tuple[int, int, list[str]]:
    """A manifest's offset covered, bytes, and the digests of its chunks."""
    try:
        m = orjson.loads(record)
        digests = m["chunks"]
        if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
            raise TypeError(f"chunks: {type(digests).__name__}, not a list of names")
        return int(m["offset"]), int(m["bytes"]), digests
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BrokenSnapshot(
            -1, f"a snapshot manifest that cannot be read ({exc!r})"[:300]
        ) from exc


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
        return read_snapshot(self.table.data, source)

    def offset(self, source: str) -> int | None:
        """The offset the latest snapshot of ``source`` covers (see ``snapshot_offset``)."""
        return snapshot_offset(self.table.data, source)

    async def write(self, source: str, blob: bytes) -> list[int]:
        """Land a snapshot: the chunks not stored yet, then its manifest, then
        delete the chunks no manifest names any more. Returns the sizes of the
        records written."""
        partition = int(source.rpartition(":")[2])
        chunks, manifest = snapshot_records(source, blob, self.chunk_bytes)
        data = self.table.data
        new = [(key, chunk) for key, chunk in dict(chunks).items() if key not in data]
        await self._send(partition, new)
        await self._send(partition, [manifest])
        for key, value in (*new, manifest):
            data[key] = value
        current = {key for key, _ in chunks}
        stale = [k for k in data if k.startswith(f"{source}/") and k not in current]
        await self._send(partition, [(key, None) for key in stale])
        for key in stale:
            data.pop(key, None)
        return [len(value) for _, value in (*new, manifest)]

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

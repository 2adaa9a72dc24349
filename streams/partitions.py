"""The partitions an agent serves in this worker, and their snapshots.

For every partition (a *source*, ``topic:partition``) an agent reads, this
keeps the live model state (``streams.checkpoint.Checkpointed``), the sink
its decisions go to, the stream that acknowledges its messages and a lock;
it resumes a partition from its snapshot, passes on only the messages the
state lacks, in offset order, and lands snapshots in the background, in
order, each after what its messages made has been delivered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, cast

import faust

from infra.kafka import partition_name
from streams import metrics
from streams.checkpoint import BrokenSnapshot, Checkpointed, Next, S, SnapshotStore
from streams.sinks.base import Sink

log = logging.getLogger(__name__)

# How long to wait for a rewound partition's first message before seeking again.
REWIND_S = 5.0


def source_of(message: Any) -> str:
    return partition_name(message.topic, message.partition)


@dataclass
class Partition(Generic[S]):
    """One partition an agent reads: what outlives its state moving away."""

    source: str
    sink: Sink
    live: Checkpointed[S] | None = None  # None until resumed, and once it moves away
    stream: faust.Stream | None = None  # the stream that acknowledges its messages
    # Held while its state takes a message (or retires a silent source): a
    # timer must not snapshot it halfway, with decisions made but not yet sent.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    taken_at: float = float("-inf")  # wall clock its latest message was folded in
    # The offset the consumer was sent back to after it skipped some, and
    # when: messages past it are dropped (unacknowledged) until it arrives.
    rewound: tuple[Any, int, float] | None = None
    landing: asyncio.Future[None] | None = None  # its latest snapshot on its way

    @property
    def checkpointed(self) -> Checkpointed[S]:
        assert self.live is not None, f"{self.source} is not resumed"
        return self.live


class Partitions(Generic[S]):
    """The partitions one agent serves, snapshotted to one table.

    ``restore`` reads a snapshot's state, ``fresh`` makes a new one for a
    source; ``sink`` makes the sink a source's decisions go to; ``resumed``
    runs once a partition is resumed (as ``doing``, for the logs).
    """

    def __init__(
        self,
        app: faust.App,
        table: faust.types.TableT[str, bytes],
        doing: str,
        restore: Callable[[bytes], S],
        fresh: Callable[[str], S],
        sink: Callable[[], Sink],
        resumed: Callable[[Partition[S]], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.snapshots = SnapshotStore(table)
        self.doing = doing
        self.restore = restore
        self.fresh = fresh
        self.sink = sink
        self.resumed = resumed
        self.partitions: dict[str, Partition[S]] = {}

    def live(self) -> list[Partition[S]]:
        """The partitions whose state is in this worker now."""
        return [p for p in self.partitions.values() if p.live is not None]

    def resume_offset(self, source: str) -> int | None:
        """The first offset the state of ``source`` lacks, as this worker
        holds it or would resume it: its live state's, else its snapshot's;
        None with neither (from the partition's first message on)."""
        p = self.partitions.get(source)
        if p is not None and p.live is not None:
            return p.live.offset + 1
        try:
            offset = self.snapshots.offset(source)
        except BrokenSnapshot as exc:  # a manifest unread: resumed from scratch (``_resume``)
            offset = exc.offset
        return None if offset is None or offset < 0 else offset + 1

    def keep_only(self, owned: set[str]) -> None:
        """Drop the state of partitions this worker no longer owns: if one
        comes back, it may be stale, and is restored from its snapshot then.
        A rebalance seeks every partition anew, so no rewind is awaited."""
        for p in self.live():
            p.rewound = None
            if p.source not in owned:
                p.live = None

    async def events(self, stream: faust.StreamT) -> AsyncIterator[tuple[Partition[S], Any]]:
        """The stream's events that the state of their partition lacks, in
        offset order, each with its partition, whose lock is held until the
        next is asked for. Acknowledging them is left to ``checkpoint``."""
        manual = cast(faust.Stream, cast(faust.Stream, stream).noack())
        async for event in manual.events():
            message = event.message
            source = source_of(message)
            p = self.partitions.get(source)
            if p is None:
                p = self.partitions[source] = Partition(source, self.sink())
            if p.live is None:
                await self._resume(p, message)
            if p.live is None:
                # Moved away meanwhile, or where it starts is not known yet:
                # left unacknowledged; a later message finds the gap.
                continue
            p.stream = manual
            async with p.lock:
                if await self._in_order(p, event):
                    p.taken_at = time.monotonic()
                    yield p, event

    async def _resume(self, p: Partition[S], message: Any) -> None:
        """The state of a partition this worker starts on, from its snapshot or fresh."""
        fresh = functools.partial(self.fresh, p.source)
        try:
            blob = self.snapshots.read(p.source)
            live = Checkpointed.resume(blob, self.restore, fresh)
        except BrokenSnapshot as exc:
            blob, live = None, Checkpointed.refuse(exc.offset, str(exc), fresh)
        if live.offset < 0:  # fresh: it needs the partition from its first message
            earliest = await self._earliest(p, message.tp)
            if earliest is None:
                return
            live.offset = earliest - 1
        p.live = live  # after the wait: a rebalance meanwhile may have taken the partition
        if live.refused is not None:
            metrics.refused_snapshots.inc()
            log.error(
                "%s %s: the snapshot at offset %d cannot be restored (%s); "
                "going on from offset %d with models that learn afresh",
                self.doing,
                p.source,
                live.offset,
                live.refused,
                live.offset + 1,
            )
        elif blob is None:
            log.info("%s %s: from scratch", self.doing, p.source)
        else:
            log.info(
                "%s %s: resumed from the snapshot at offset %d", self.doing, p.source, live.offset
            )
        if self.resumed is not None:
            await self.resumed(p)

    async def _in_order(self, p: Partition[S], event: Any) -> bool:
        """Whether to fold this message in: the next one the state lacks.

        One already folded in is skipped (and acknowledged once a snapshot
        covers it). Past a message the state never saw, the consumer is sent
        back to it while the broker still has it: around a rebalance the
        consumer can skip offsets, or commit past what a snapshot covers.
        Only messages the broker no longer has are given up, logged with
        their offsets.
        """
        if p.live is None:  # moved away while it waited for the lock
            return False
        live, message = p.live, event.message
        step = live.place(message.offset)
        if step is Next.SEEN:
            if not live.hold(event, message.offset) and p.stream is not None:
                await p.stream.ack(event)
            return False
        if step is Next.GAP:
            return await self._rewind_or_skip(p, message)
        p.rewound = None
        return True

    async def _rewind_or_skip(self, p: Partition[S], message: Any) -> bool:
        """Send the consumer back to the first offset the state lacks (and
        drop this message, redelivered later), or, if the broker no longer
        has it, go on from this one."""
        wanted = p.checkpointed.offset + 1
        if p.rewound is not None and p.rewound[1] == wanted:
            return False  # still on its way back
        earliest = await self._earliest(p, message.tp)
        if earliest is None:
            return False  # dropped, redelivered later
        if earliest <= wanted:
            log.warning(
                "%s: the consumer skipped offsets %d to %d; reading them again",
                p.source,
                wanted,
                message.offset - 1,
            )
            metrics.rewinds.inc()
            await self._seek(p, message.tp, wanted)
            return False
        log.error(
            "%s: offsets %d to %d never reached the detectors (the broker keeps only "
            "offsets from %d); going on without them",
            p.source,
            wanted,
            message.offset - 1,
            earliest,
        )
        p.rewound = None
        return True

    async def _earliest(self, p: Partition[S], tp: Any) -> int | None:
        """The partition's first offset on the broker; None if the consumer
        does not say within ``REWIND_S``: an agent must never hang on it."""
        try:
            offsets = await asyncio.wait_for(self.app.consumer.earliest_offsets(tp), REWIND_S)
        except TimeoutError:
            log.warning(
                "%s: its first offset not known in %.0f s; asking again", p.source, REWIND_S
            )
            return None
        return int(offsets[tp])

    async def _seek(self, p: Partition[S], tp: Any, wanted: int) -> None:
        p.rewound = (tp, wanted, time.monotonic())
        # Faust took the jump for a compaction gap and counts the offsets in
        # it as acknowledged; acknowledged again once read, they would be
        # counted twice, and its committed offset would creep one at a time.
        consumer: Any = self.app.consumer
        consumer._gap.pop(tp, None)
        # From the group's committed offset if that is lower: the messages
        # between it and ``wanted`` are in the state already, but Faust
        # commits past them only once they are read and acknowledged again
        # (after a rebalance it forgets the acknowledgements it had).
        committed = consumer._committed_offset.get(tp)
        offset = wanted if committed is None else min(wanted, committed)
        # The Kafka client runs in the consumer's own thread, fetching while
        # the agent runs: a seek from here raced its fetcher (which failed
        # with KeyError, and stopped the worker). The seek is run in that
        # thread, as Faust's own seeks to the beginning or the committed
        # offsets are; then the read position is reset, as Faust's seek does.
        thread = consumer._thread
        try:
            await asyncio.wait_for(
                thread.call_thread(thread._ensure_consumer().seek, tp, offset), REWIND_S
            )
        except TimeoutError:
            # The consumer's thread is busy (a rebalance, say): the agent
            # must not wait on it; ``seek_again`` tries once more.
            log.warning("%s: seeking offset %d timed out; trying again", p.source, offset)
            return
        consumer._read_offset[tp] = offset if offset else None

    async def seek_again(self, owned: set[str]) -> None:
        """Seek again the partitions whose rewind has not arrived after
        ``REWIND_S``: messages the consumer had fetched before the seek move
        its read position past the rewound offset, and it drops what it
        fetches below it. Once those are through, a new seek holds."""
        now = time.monotonic()
        for p in self.live():
            if p.source in owned and p.rewound is not None and now - p.rewound[2] >= REWIND_S:
                tp, offset, _ = p.rewound
                log.info("%s: seeking offset %d again", p.source, offset)
                await self._seek(p, tp, offset)

    def checkpoint(self, p: Partition[S]) -> None:
        """Snapshot a partition's state now; land it in the background.

        The agent goes on at once: waiting here for the broker stalled every
        partition the agent serves, once per snapshot.
        """
        live, stream = p.checkpointed, p.stream
        assert stream is not None
        live.sent.append(asyncio.ensure_future(p.sink.drain()))
        blob, acked, sent = live.checkpoint()
        task = asyncio.ensure_future(self._land(p.landing, p.source, blob, acked, sent, stream))
        task.add_done_callback(functools.partial(self._landed, p))
        p.landing = task

    async def _land(
        self,
        previous: asyncio.Future[None] | None,
        source: str,
        blob: bytes,
        acked: list[Any],
        sent: list[Awaitable[Any]],
        stream: faust.Stream,
    ) -> None:
        """Deliver a snapshot after what its messages made, then acknowledge them.

        First the earlier snapshot of the partition, so that they land in
        order; then what the covered messages made, then the snapshot (Faust's
        own table writes are not awaited), then the acknowledgements: a worker
        killed at any point leaves neither a snapshot claiming sends that
        never landed nor offsets committed past a snapshot that never landed.
        """
        if previous is not None:
            await asyncio.wait([previous])  # its failure is logged; this one covers more
        await asyncio.gather(*sent)
        sizes = await self.snapshots.write(source, blob)
        metrics.snapshot_bytes.observe(sum(sizes))
        metrics.snapshot_records.inc(len(sizes))
        for event in acked:
            await stream.ack(event)

    @staticmethod
    def _landed(p: Partition[Any], task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Its messages stay unacknowledged: redelivered to whoever resumes.
            log.error("%s: a snapshot did not land: %r", p.source, task.exception())
        if p.landing is task:
            p.landing = None

    def snapshot_quiet(self, owned: set[str], quiet_s: float) -> None:
        """Snapshot the partitions gone quiet for ``quiet_s`` with messages a
        snapshot would let be acknowledged.

        Otherwise their last messages stay uncommitted until more arrive:
        nothing is lost, they would be redelivered, but the committed offsets
        would never reach the end, and the group's lag would never fall to 0.
        """
        now = time.monotonic()
        for p in self.live():
            if p.source not in owned or p.lock.locked() or not p.checkpointed.pending():
                continue
            if now - p.taken_at >= quiet_s:
                self.checkpoint(p)

"""Offsets a partition's model state holds, and what may be acknowledged."""

from __future__ import annotations

import asyncio

import pytest

from models.snapshot import IncompatibleSnapshot
from streams.checkpoint import BrokenSnapshot, Checkpointed, Next, SnapshotStore, pack, unpack


class Counter:
    """State that folds in messages; like a correlator, it may be done only
    up to some point with what it was given."""

    def __init__(self, n: int = 0) -> None:
        self.n = n
        self.done = float("inf")

    def snapshot(self) -> bytes:
        return str(self.n).encode()


def restore(blob: bytes) -> Counter:
    return Counter(int(blob))


def test_messages_are_folded_strictly_in_offset_order():
    live = Checkpointed.resume(None, restore, Counter)
    live.offset = 9  # the partition starts at offset 10
    assert live.place(9) is Next.SEEN
    assert live.place(10) is Next.FOLD
    live.take("e10", 10)
    assert live.place(12) is Next.GAP


def test_a_snapshot_covers_what_was_taken_and_releases_it_in_order():
    live = Checkpointed.resume(None, restore, Counter)
    for offset in range(3):
        live.take(f"e{offset}", offset)
        live.state.n += 1
    blob, acked, _ = live.checkpoint()
    assert acked == ["e0", "e1", "e2"]
    assert unpack(blob) == (2, b"3")
    resumed = Checkpointed.resume(blob, restore, Counter)
    assert (resumed.offset, resumed.state.n) == (2, 3)
    assert resumed.place(3) is Next.FOLD


def test_a_message_due_later_is_covered_only_once_the_state_is_done_with_it():
    live = Checkpointed.resume(None, restore, Counter)
    live.state.done = 20.0  # e.g. windows up to 20 correlated
    for offset, due in enumerate([10.0, 20.0, 30.0, 10.0, 40.0]):
        live.take(f"e{offset}", offset, due=due)
    assert live.covered() == 1  # e2 waits, and so does all after it
    blob, acked, _ = live.checkpoint()
    assert (unpack(blob)[0], acked) == (1, ["e0", "e1"])
    assert not live.pending()  # nothing more to acknowledge yet
    live.state.done = 30.0
    assert live.pending() and live.covered() == 3
    assert live.checkpoint()[1] == ["e2", "e3"]
    assert [offset for offset, _, _ in live.unacked] == [4]


def test_a_redelivered_message_waits_for_the_next_snapshot_unless_covered():
    live = Checkpointed.resume(None, restore, Counter)
    live.state.done = 0.0
    for offset in range(5):
        live.take(f"e{offset}", offset, due=0.0 if offset < 3 else 1.0)
    live.checkpoint()  # reports from offset 3 still wait: covers up to 2
    assert live.hold("again1", 1) is False  # covered: acknowledge now
    assert live.hold("again4", 4) is True  # not yet: acknowledged with the next snapshot
    live.state.done = 1.0
    assert live.checkpoint()[1] == ["e3", "e4", "again4"]


def test_a_snapshot_waits_for_what_its_messages_sent_and_only_that():
    live = Checkpointed.resume(None, restore, Counter)
    live.take("e0", 0)
    live.sent.append("report of e0")
    _, _, sent = live.checkpoint()
    assert sent == ["report of e0"] and live.sent == []
    assert live.checkpoint()[2] == []


def test_a_snapshot_that_cannot_be_restored_is_refused_and_the_partition_goes_on_after_it():
    def refuse(blob: bytes) -> Counter:
        raise IncompatibleSnapshot("snapshot format 1; this version reads format 2")

    resumed = Checkpointed.resume(pack(41, Counter(7)), refuse, Counter)
    assert resumed.refused == "snapshot format 1; this version reads format 2"
    assert resumed.state.n == 0  # learning afresh
    # What the snapshot covered was acknowledged already and is not decided twice.
    assert (resumed.offset, resumed.saved) == (41, 41)
    assert resumed.place(41) is Next.SEEN and resumed.place(42) is Next.FOLD
    assert Checkpointed.resume(pack(41, Counter(7)), restore, Counter).refused is None


class Changelog:
    """A table's data and the records sent to its changelog, in order."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.sent: list[tuple[int | None, str, bytes | None]] = []

    def send_changelog(self, partition, key, value, key_serializer=None, value_serializer=None):
        self.sent.append((partition, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def series_state(values: list[int]) -> bytes:
    """A state like a partition's: one entry per series, in a stable order."""
    return (
        b"[" + b",".join(b'{"series":%d,"mean":%d}' % (n, v) for n, v in enumerate(values)) + b"]"
    )


class Series:
    def __init__(self, values: list[int]) -> None:
        self.values = values

    def snapshot(self) -> bytes:
        return series_state(self.values)


def test_a_large_snapshot_lands_as_small_records_and_replaces_the_last_whole():
    table = Changelog()
    store = SnapshotStore(table, chunk_bytes=4096)
    big, small = pack(41, Series(list(range(2000)))), pack(57, Counter(3))

    sizes = asyncio.run(store.write("pods:3", big))
    assert len(sizes) > 8 and max(sizes) <= 4096
    assert [p for p, _, _ in table.sent] == [3] * len(sizes)
    assert table.sent[-1][1] == "pods:3"  # the manifest is sent last
    assert store.read("pods:3") == big
    assert store.offset("pods:3") == 41

    table.sent.clear()
    asyncio.run(store.write("pods:3", small))
    assert store.read("pods:3") == small
    assert [v for _, _, v in table.sent[:2]] == [small, table.data["pods:3"]]
    # The records of the snapshot replaced are deleted, on the changelog too.
    gone = {key for _, key, value in table.sent if value is None}
    assert len(gone) == len(sizes) - 1
    assert len(table.data) == 2 and not gone & set(table.data)


def test_a_snapshot_writes_only_the_records_whose_state_changed():
    table = Changelog()
    store = SnapshotStore(table, chunk_bytes=4096)
    values = list(range(5000))
    first = asyncio.run(store.write("pods:3", pack(41, Series(values))))
    values[2500] += 1  # one series of 5,000 learned something
    table.sent.clear()
    second = asyncio.run(store.write("pods:3", pack(42, Series(values))))
    written = [key for _, key, value in table.sent if value is not None]
    deleted = [key for _, key, value in table.sent if value is None]
    # The chunk around that series (or the two it straddles), and the manifest.
    assert 2 <= len(second) <= 3 < len(first) / 10, (len(first), len(second))
    assert written[-1] == "pods:3" and len(deleted) == len(second) - 1
    assert store.read("pods:3") == pack(42, Series(values))


def test_a_snapshot_missing_a_record_is_refused_with_the_offset_it_covered():
    table = Changelog()
    store = SnapshotStore(table, chunk_bytes=4096)
    asyncio.run(store.write("pods:3", pack(41, Series(list(range(2000))))))
    chunks = sorted(key for key in table.data if "/" in key)
    table.data[chunks[1]] = b"tampered"
    with pytest.raises(BrokenSnapshot, match="is not what it is named") as broken:
        store.read("pods:3")
    assert broken.value.offset == 41
    del table.data[chunks[1]]
    with pytest.raises(BrokenSnapshot, match=f"lacks record \\d+ of {len(chunks)}"):
        store.read("pods:3")

"""Offsets a partition's model state holds, and what may be acknowledged."""

from __future__ import annotations

from models.snapshot import IncompatibleSnapshot
from streams.checkpoint import Checkpointed, Next, pack, unpack


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

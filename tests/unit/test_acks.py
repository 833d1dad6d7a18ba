"""What the pusher may commit while it acknowledges out of order (issue 11, defect 3): the
lowest offset handed out and not acknowledged, never past it; right after an assignment
too; and an acknowledgement from before a revocation counts for nothing."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from qbsync.kafka.acks import AckTracker, PartitionAcks


def test_an_unacknowledged_offset_at_the_committed_position_holds_the_commit() -> None:
    acks = PartitionAcks()
    for offset in range(100, 106):  # the committed position is 100: read from there
        acks.handed_out(offset)
    for offset in range(101, 106):
        acks.acked(offset)
    assert acks.committable() == 100
    acks.acked(100)
    assert acks.committable() == 106


def test_nothing_handed_out_nothing_to_commit() -> None:
    assert PartitionAcks().committable() is None


def test_the_commit_advances_over_the_contiguous_prefix_only() -> None:
    acks = PartitionAcks()
    for offset in (7, 8, 9, 12, 13):  # gaps: compacted or dead-lettered elsewhere
        acks.handed_out(offset)
    for offset in (7, 9, 13):
        acks.acked(offset)
    assert acks.committable() == 8
    acks.acked(8)
    assert acks.committable() == 12
    acks.acked(12)
    assert acks.committable() == 14


def record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])


async def test_right_after_an_assignment_the_first_record_must_be_acknowledged_too() -> None:
    tracker = AckTracker()
    acks = [tracker.hand_out(record(0, offset)) for offset in range(100, 106)]
    for ack in acks[1:]:
        await ack()
    assert tracker.to_commit() == {TopicPartition("t", 0): 100}


async def test_acknowledgements_from_before_a_revocation_are_ignored() -> None:
    tracker = AckTracker()
    old = tracker.hand_out(record(0, 5))
    tracker.forget({TopicPartition("t", 0)})
    tracker.hand_out(record(0, 5))  # reassigned: read again from the committed position
    await old()
    assert tracker.to_commit() == {TopicPartition("t", 0): 5}


async def test_only_positions_that_moved_are_committed_again() -> None:
    tracker = AckTracker()
    await tracker.hand_out(record(0, 1))()
    tracker.hand_out(record(1, 1))
    moved = tracker.to_commit()
    assert moved == {TopicPartition("t", 0): 2, TopicPartition("t", 1): 1}
    tracker.committed(moved)
    assert tracker.to_commit() == {}

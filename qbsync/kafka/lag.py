"""Consumer lag, computed from a snapshot of offsets (pure; the broker is read by
qbsync/kafka/offsets.py).

Lag of a group on a partition = the partition's end offset minus the group's committed
offset. A partition the group never committed on counts from the oldest message still
held, as does a commit older than that (retention deleted what lay between): that is
where a consumer with auto_offset_reset=earliest, as every qbsync consumer is, starts.

The time to catch up is estimated from the consumption rate: how fast the committed
offsets advanced between the oldest and the newest snapshot in a sliding window.
It assumes nothing new arrives meanwhile, and is unknown while no rate is known.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from qbsync.kafka.topics import DLQ_SUFFIX

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class PartitionOffsets:
    start: int  # the oldest offset still held (log start offset)
    end: int  # the offset the next message will get (high watermark)

    @property
    def messages(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class OffsetsSnapshot:
    """What one collection round read from the broker."""

    taken_at: float  # seconds since the epoch
    committed: Mapping[str, Mapping[TopicPartitionKey, int]]  # group -> partition -> offset
    partitions: Mapping[TopicPartitionKey, PartitionOffsets]  # every partition seen
    collect_seconds: float = 0.0


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed_offset: int | None
    end_offset: int
    lag: int
    consumption_rate: float | None  # committed offsets per second; None until known
    catch_up_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed_offset": self.committed_offset,
            "end_offset": self.end_offset,
            "lag": self.lag,
            "consumption_rate": _rounded(self.consumption_rate),
            "catch_up_seconds": _rounded(self.catch_up_seconds),
        }


@dataclass(frozen=True)
class GroupLag:
    group: str
    partitions: tuple[PartitionLag, ...]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def consumption_rate(self) -> float | None:
        rates = [p.consumption_rate for p in self.partitions if p.consumption_rate is not None]
        return sum(rates) if rates else None

    @property
    def catch_up_seconds(self) -> float | None:
        return catch_up_seconds(self.lag, self.consumption_rate)

    def lag_by_topic(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for p in self.partitions:
            totals[p.topic] = totals.get(p.topic, 0) + p.lag
        return totals

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "lag": self.lag,
            "consumption_rate": _rounded(self.consumption_rate),
            "catch_up_seconds": _rounded(self.catch_up_seconds),
            "partitions": [p.to_json() for p in self.partitions],
        }


@dataclass(frozen=True)
class LagReport:
    taken_at: float
    groups: tuple[GroupLag, ...]
    rate_window_seconds: float | None  # the span the rates were measured over

    def group(self, name: str) -> GroupLag | None:
        return next((g for g in self.groups if g.group == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "collected_at": datetime.fromtimestamp(self.taken_at, UTC).isoformat(),
            "rate_window_seconds": _rounded(self.rate_window_seconds),
            "groups": [g.to_json() for g in self.groups],
        }


def catch_up_seconds(lag: int, rate: float | None) -> float | None:
    """0 when there is no lag; None when the rate is unknown or nothing is being consumed."""
    if lag <= 0:
        return 0.0
    if rate is None or rate <= 0:
        return None
    return lag / rate


def partition_lag(committed: int | None, offsets: PartitionOffsets) -> int:
    consumed_up_to = offsets.start if committed is None else max(committed, offsets.start)
    return max(0, offsets.end - consumed_up_to)


@dataclass
class RateTracker:
    """Keeps recent snapshots and tells how fast each group's committed offsets advance."""

    window_seconds: float = 60.0
    _samples: deque[OffsetsSnapshot] = field(default_factory=deque)

    def add(self, snapshot: OffsetsSnapshot) -> None:
        self._samples.append(snapshot)
        # Keep the newest sample older than the window too, so the window is always covered.
        while (
            len(self._samples) > 2
            and snapshot.taken_at - self._samples[1].taken_at >= self.window_seconds
        ):
            self._samples.popleft()

    @property
    def span_seconds(self) -> float | None:
        if len(self._samples) < 2:
            return None
        return self._samples[-1].taken_at - self._samples[0].taken_at

    def rate(self, group: str, topic_partition: TopicPartitionKey) -> float | None:
        """Committed offsets per second over the window; None with fewer than two samples."""
        seen = [
            (s.taken_at, s.committed[group][topic_partition])
            for s in self._samples
            if topic_partition in s.committed.get(group, {})
        ]
        if len(seen) < 2:
            return None
        (first_at, first), (last_at, last) = seen[0], seen[-1]
        if last_at <= first_at:
            return None
        # A reset to an earlier offset is not negative consumption.
        return max(0.0, (last - first) / (last_at - first_at))


def build_report(snapshot: OffsetsSnapshot, rates: RateTracker | None = None) -> LagReport:
    """Lag per group, topic and partition, for every topic the group has committed on."""
    partitions_of = _partitions_by_topic(snapshot.partitions)
    groups: list[GroupLag] = []
    for group in sorted(snapshot.committed):
        commits = snapshot.committed[group]
        rows: list[PartitionLag] = []
        for topic in sorted({topic for topic, _ in commits}):
            for key in partitions_of.get(topic, []):
                offsets = snapshot.partitions[key]
                committed = commits.get(key)
                lag = partition_lag(committed, offsets)
                rate = rates.rate(group, key) if rates is not None else None
                rows.append(
                    PartitionLag(
                        group=group,
                        topic=topic,
                        partition=key[1],
                        committed_offset=committed,
                        end_offset=offsets.end,
                        lag=lag,
                        consumption_rate=rate,
                        catch_up_seconds=catch_up_seconds(lag, rate),
                    )
                )
        if rows:  # a group whose topics are all gone has nothing to report
            groups.append(GroupLag(group, tuple(rows)))
    span = rates.span_seconds if rates is not None else None
    return LagReport(snapshot.taken_at, tuple(groups), span)


@dataclass(frozen=True)
class DeadLetterBacklog:
    topic: str  # the dead-letter topic's full name
    messages: int  # held in the topic
    pending: int  # not yet redriven or discarded


def dead_letter_backlogs(
    snapshot: OffsetsSnapshot, redrive_group_of: Mapping[str, str]
) -> list[DeadLetterBacklog]:
    """Size of every `*.dlq` topic in the snapshot. `redrive_group_of` maps a dead-letter
    topic to the consumer group whose committed offsets mark what was redriven."""
    backlogs: list[DeadLetterBacklog] = []
    for topic, keys in sorted(_partitions_by_topic(snapshot.partitions).items()):
        if not topic.endswith(DLQ_SUFFIX):
            continue
        group = redrive_group_of.get(topic)
        commits = snapshot.committed.get(group, {}) if group else {}
        messages = pending = 0
        for key in keys:
            offsets = snapshot.partitions[key]
            messages += offsets.messages
            pending += partition_lag(commits.get(key), offsets)
        backlogs.append(DeadLetterBacklog(topic, messages, pending))
    return backlogs


def _partitions_by_topic(
    partitions: Iterable[TopicPartitionKey],
) -> dict[str, list[TopicPartitionKey]]:
    by_topic: dict[str, list[TopicPartitionKey]] = {}
    for key in sorted(partitions):
        by_topic.setdefault(key[0], []).append(key)
    return by_topic


def _rounded(value: float | None) -> float | None:
    if value is None or math.isinf(value):
        return None
    return round(value, 3)

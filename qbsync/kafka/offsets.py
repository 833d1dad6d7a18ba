"""Reading consumer groups' committed offsets and partitions' start and end offsets.

One collection round costs a fixed set of requests, however many partitions there are:
ListGroups and Metadata once, FindCoordinator (cached) and OffsetFetch once per group, all
groups at the same time (aiokafka's admin client), then ListOffsets for the latest and the
earliest offsets (confluent-kafka's public `AdminClient.list_offsets`, which sends one
request per partition leader). The broker's request versions that aiokafka speaks fetch
one group's offsets per request, hence one OffsetFetch per group.

Only groups and topics whose names start with the prefix are read (QBSYNC_TOPIC_PREFIX),
so test sessions sharing one broker never see each other.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

from aiokafka.errors import KafkaError, NotCoordinatorForGroupError
from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ListOffsetsResultInfo, OffsetSpec

from qbsync.errors import DependencyUnavailable
from qbsync.kafka.admin import connect_admin
from qbsync.kafka.lag import OffsetsSnapshot, PartitionOffsets, TopicPartitionKey

NO_OFFSET = -1  # what OffsetFetch answers for a partition the group never committed on
LATEST: OffsetSpec = OffsetSpec.latest()
EARLIEST: OffsetSpec = OffsetSpec.earliest()


class OffsetsCollector:
    """Long-lived (the exporter and `lag --watch` reuse its connections between rounds)."""

    def __init__(self, bootstrap: str, prefix: str = "", request_timeout_ms: int = 10000) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self._timeout_ms = request_timeout_ms
        self._admin: Any = None
        self._offsets: AdminClient | None = None
        self._coordinators: dict[str, int] = {}

    async def start(self, attempts: int = 3) -> None:
        # aiokafka's admin is reached (with retries) first, so the broker answers by the
        # time librdkafka's client, which connects lazily in its own threads, is made.
        self._admin = await connect_admin(self.bootstrap, attempts, self._timeout_ms)
        self._offsets = AdminClient(
            {"bootstrap.servers": self.bootstrap, "socket.timeout.ms": self._timeout_ms}
        )

    async def close(self) -> None:
        self._offsets = None  # librdkafka's client has no close: its threads end with it
        if self._admin is not None:
            await self._admin.close()

    async def __aenter__(self) -> OffsetsCollector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def collect(self) -> OffsetsSnapshot:
        """One round: every prefixed group's commits and every prefixed partition's offsets."""
        started = time.perf_counter()
        try:
            groups, topics = await asyncio.gather(self._groups(), self._admin.describe_topics())
            commits = await asyncio.gather(*(self._committed(group) for group in groups))
            leaders: dict[int, list[TopicPartitionKey]] = {}
            for topic in topics:
                name = topic["topic"]
                if topic["error_code"] or topic["is_internal"] or not name.startswith(self.prefix):
                    continue
                for partition in topic["partitions"]:
                    key = (name, partition["partition"])
                    leaders.setdefault(partition["leader"], []).append(key)
            partitions = [key for leader, keys in leaders.items() if leader >= 0 for key in keys]
            ends, starts = await asyncio.gather(
                self._list_offsets(partitions, LATEST),
                self._list_offsets(partitions, EARLIEST),
            )
        except (KafkaError, KafkaException) as exc:
            raise DependencyUnavailable(f"Kafka: {type(exc).__name__}: {exc}") from exc
        return OffsetsSnapshot(
            taken_at=time.time(),
            committed=dict(zip(groups, commits, strict=True)),
            partitions={
                key: PartitionOffsets(start=starts[key], end=end)
                for key, end in ends.items()
                if key in starts
            },
            collect_seconds=time.perf_counter() - started,
        )

    async def _list_offsets(
        self, partitions: list[TopicPartitionKey], spec: OffsetSpec
    ) -> dict[TopicPartitionKey, int]:
        """The offsets `spec` names (the latest: the high watermark, since no qbsync
        producer is transactional). A partition that answers with an error (its leader is
        moving, say) is left out of this round rather than failing it; every partition
        failing means Kafka is not answering."""
        if not partitions or self._offsets is None:
            return {}
        futures = self._offsets.list_offsets(
            {TopicPartition(topic, partition): spec for topic, partition in partitions},
            isolation_level=IsolationLevel.READ_UNCOMMITTED,
            request_timeout=self._timeout_ms / 1000,
        )
        keys = [(tp.topic, tp.partition) for tp in futures]
        answers = await asyncio.gather(
            *(asyncio.wrap_future(future) for future in futures.values()),
            return_exceptions=True,
        )
        offsets: dict[TopicPartitionKey, int] = {}
        failures: list[BaseException] = []
        for key, answer in zip(keys, answers, strict=True):
            if isinstance(answer, ListOffsetsResultInfo):
                offsets[key] = answer.offset
            elif isinstance(answer, BaseException):
                failures.append(answer)
        if failures and not offsets:
            raise KafkaException(failures[0])
        return offsets

    async def _groups(self) -> list[str]:
        listed = await self._admin.list_consumer_groups()
        return sorted(str(group) for group, *_ in listed if str(group).startswith(self.prefix))

    async def _committed(self, group: str) -> dict[TopicPartitionKey, int]:
        try:
            offsets = await self._admin.list_consumer_group_offsets(
                group, group_coordinator_id=await self._coordinator(group)
            )
        except NotCoordinatorForGroupError:
            # The coordinator moved since we cached it: ask again, once.
            self._coordinators.pop(group, None)
            offsets = await self._admin.list_consumer_group_offsets(
                group, group_coordinator_id=await self._coordinator(group)
            )
        return {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in offsets.items()
            if meta.offset != NO_OFFSET and tp.topic.startswith(self.prefix)
        }

    async def _coordinator(self, group: str) -> int:
        if group not in self._coordinators:
            self._coordinators[group] = await self._admin.find_coordinator(group)
        return self._coordinators[group]

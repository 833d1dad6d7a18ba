"""Reading consumer groups' committed offsets and partitions' start and end offsets.

One collection round costs a fixed set of requests, however many partitions there are:
ListGroups and Metadata once, FindCoordinator (cached) and OffsetFetch once per group, all
groups at the same time, then ListOffsets for the latest and the earliest offsets, one
request per partition leader each. The broker's request versions that aiokafka speaks
fetch one group's offsets per request, hence one OffsetFetch per group.

Only groups and topics whose names start with the prefix are read (QBSYNC_TOPIC_PREFIX),
so test sessions sharing one broker never see each other.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, NotCoordinatorForGroupError
from aiokafka.protocol.offset import OffsetRequest

from qbsync.errors import DependencyUnavailable
from qbsync.kafka.admin import connect_admin
from qbsync.kafka.lag import OffsetsSnapshot, PartitionOffsets, TopicPartitionKey
from qbsync.retry import with_backoff

NO_OFFSET = -1  # what OffsetFetch answers for a partition the group never committed on
LATEST, EARLIEST = -1, -2  # ListOffsets' special timestamps
READ_UNCOMMITTED = 0  # end offset = high watermark (no qbsync producer is transactional)


class OffsetsCollector:
    """Long-lived (the exporter and `lag --watch` reuse its connections between rounds)."""

    def __init__(self, bootstrap: str, prefix: str = "", request_timeout_ms: int = 10000) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self._timeout_ms = request_timeout_ms
        self._admin: Any = None
        self._offsets: Any = None
        self._coordinators: dict[str, int] = {}

    async def start(self, attempts: int = 3) -> None:
        async def connect_offsets_client() -> Any:
            # A bare client: it only asks partition leaders for offsets.
            client = AIOKafkaClient(
                bootstrap_servers=self.bootstrap, request_timeout_ms=self._timeout_ms
            )
            try:
                await client.bootstrap()
            except BaseException:
                await client.close()
                raise
            return client

        self._admin = await connect_admin(self.bootstrap, attempts, self._timeout_ms)
        self._offsets = await with_backoff("Kafka", connect_offsets_client, attempts)

    async def close(self) -> None:
        if self._offsets is not None:
            await self._offsets.close()
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
            ends, starts = await asyncio.gather(
                self._list_offsets(leaders, LATEST), self._list_offsets(leaders, EARLIEST)
            )
        except KafkaError as exc:
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
        self, leaders: dict[int, list[TopicPartitionKey]], timestamp: int
    ) -> dict[TopicPartitionKey, int]:
        """One ListOffsets request per leader. A partition that answers with an error (its
        leader is moving, say) is left out of this round rather than failing it."""

        async def ask(leader: int, keys: list[TopicPartitionKey]) -> Any:
            by_topic: dict[str, list[tuple[int, int]]] = {}
            for topic, partition in keys:
                by_topic.setdefault(topic, []).append((partition, timestamp))
            request = OffsetRequest(-1, READ_UNCOMMITTED, list(by_topic.items()))
            return await self._offsets.send(leader, request)

        answers = await asyncio.gather(
            *(ask(leader, keys) for leader, keys in leaders.items() if leader >= 0)
        )
        offsets: dict[TopicPartitionKey, int] = {}
        for answer in answers:
            for topic, partitions in answer.topics:
                for partition, error_code, *found in partitions:
                    if error_code == 0:
                        offsets[(topic, partition)] = found[1]  # (timestamp, offset, ...)
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

"""Every topic the project reads or writes, declared once.

Names here are the contract's names; QBSYNC_TOPIC_PREFIX (empty by default) is put in
front of each so that test runs can share one broker without sharing topics.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    partitions: int
    compacted: bool = False
    retention_ms: int = 7 * DAY_MS
    has_dlq: bool = False

    def config(self) -> dict[str, str]:
        if self.compacted:
            return {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


ACCOUNT_EVENTS = "liscio.account-events"
ACCOUNT_COMMANDS = "liscio.account-commands"
QBO_CUSTOMERS = "qbo.customers"
QBO_CHANGES = "qbo.changes"
SYNC_REQUESTS = "sync.requests"
SYNC_LINKS = "sync.links"

DLQ_SUFFIX = ".dlq"

CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(ACCOUNT_EVENTS, "{firm_id}:{account_id}", 8, has_dlq=True),
    TopicSpec(ACCOUNT_COMMANDS, "{firm_id}:{account_id}", 8),
    TopicSpec(QBO_CUSTOMERS, "{realm_id}:{customer_id}", 8, compacted=True, has_dlq=True),
    TopicSpec(QBO_CHANGES, "{realm_id}", 4, has_dlq=True),
    TopicSpec(SYNC_REQUESTS, "{firm_id}", 4, has_dlq=True),
    TopicSpec(SYNC_LINKS, "{firm_id}:{account_id}", 4, retention_ms=30 * DAY_MS),
)


def dlq_of(topic: str) -> str:
    return topic + DLQ_SUFFIX


def all_specs() -> list[TopicSpec]:
    """The catalogue plus one dead-letter topic for each input topic."""
    specs = list(CATALOGUE)
    for spec in CATALOGUE:
        if spec.has_dlq:
            specs.append(
                TopicSpec(dlq_of(spec.name), "the original key", 1, retention_ms=30 * DAY_MS)
            )
    return specs


def spec_of(name: str) -> TopicSpec:
    for spec in all_specs():
        if spec.name == name:
            return spec
    raise KeyError(name)

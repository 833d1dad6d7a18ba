"""Whether this process's Kafka consumers hold their group assignment: half of a
service's readiness (`/readyz`; the other half is PostgreSQL answering).

A consumer counts as holding its assignment from the end of a rebalance (its listener's
`on_partitions_assigned`, even with no partition: more instances than partitions is a
normal state) until its partitions are revoked or it stops. A process with no consumer
registered holds nothing, so a worker that has not joined its group yet is not ready.
"""

from __future__ import annotations


class GroupMembership:
    def __init__(self) -> None:
        self._holding: dict[str, bool] = {}

    def joining(self, consumer: str) -> None:
        self._holding[consumer] = False

    def assigned(self, consumer: str) -> None:
        self._holding[consumer] = True

    def revoked(self, consumer: str) -> None:
        if consumer in self._holding:
            self._holding[consumer] = False

    def left(self, consumer: str) -> None:
        self._holding.pop(consumer, None)

    def holds_assignment(self) -> bool:
        return bool(self._holding) and all(self._holding.values())


MEMBERSHIP = GroupMembership()  # the process's consumers (a service runs one or two)

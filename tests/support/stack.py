"""Where the real Kafka broker and PostgreSQL server of a test run come from.

One interface, two ways to get it:
- LocalStack: the broker and cluster `make services-up` started (the only path on
  machines without a Docker engine, which is where CI runs today);
- ContainerStack: testcontainers, chosen when a Docker engine answers and
  QBSYNC_TEST_STACK=containers.
Each test session then gets its own database and its own topic prefix on that stack,
so runs never see each other's data.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parents[2]


class Stack(Protocol):
    kafka_bootstrap: str
    database_url: str

    def close(self) -> None: ...


@dataclass
class LocalStack:
    kafka_bootstrap: str
    database_url: str

    @classmethod
    def from_environment(cls) -> LocalStack:
        values = dict(os.environ)
        env_file = REPO / ".run" / "services.env"
        if env_file.exists():
            for line in env_file.read_text().splitlines():
                key, _, value = line.partition("=")
                values.setdefault(key, value)
        missing = [k for k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL") if k not in values]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} unknown: run `make services-up` first")
        return cls(values["KAFKA_BOOTSTRAP_SERVERS"], values["DATABASE_URL"])

    def close(self) -> None:
        pass


class ContainerStack:
    def __init__(self) -> None:
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        self._kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft()
        self._postgres = PostgresContainer("postgres:15", driver=None)
        self._kafka.start()
        self._postgres.start()
        self.kafka_bootstrap = self._kafka.get_bootstrap_server()
        self.database_url = self._postgres.get_connection_url()

    def close(self) -> None:
        self._kafka.stop()
        self._postgres.stop()


def docker_engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def open_stack() -> Stack:
    if os.environ.get("QBSYNC_TEST_STACK") == "containers" and docker_engine_answers():
        return ContainerStack()
    return LocalStack.from_environment()

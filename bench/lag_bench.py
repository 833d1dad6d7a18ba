"""Benchmark: collecting the lag of 50 consumer groups over 200 partitions.

On the real broker of `make services-up`, under a prefix of its own: 10 topics of 20
partitions with messages on every partition, and 50 groups that each committed an offset on
all 200 partitions (10,000 group-partition rows). Then the lag is collected the way
`qbsync lag` and the lag exporter do (OffsetsCollector.collect + build_report): the first
round on fresh connections, then warm rounds as the exporter and `--watch` repeat them.
The whole `qbsync lag --json` command is timed too, Python start-up included.

    make bench-lag                    # or:
    .venv/bin/python -m bench.lag_bench --groups 50 --topics 10 --partitions 20

Checks the figures it reads against what it committed, writes bench/results/lag.json and
prints it; deletes its topics afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic

from qbsync.config import load_settings
from qbsync.kafka.admin import kafka_admin
from qbsync.kafka.lag import build_report
from qbsync.kafka.offsets import OffsetsCollector

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "lag.json"
MESSAGES_PER_PARTITION = 20


def committed_offset(group: int, partition: int) -> int:
    """What group `group` committed on a partition: spread so that lags differ."""
    return (group + partition) % (MESSAGES_PER_PARTITION + 1)


async def prepare(
    bootstrap: str, prefix: str, topics: list[str], partitions: int, groups: list[str]
) -> int:
    """Create the topics, fill them, commit every group's offsets; returns the expected lag."""
    async with kafka_admin(bootstrap) as admin:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
        await wait_for_leaders(admin, topics, partitions)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        for topic in topics:
            for partition in range(partitions):
                for number in range(MESSAGES_PER_PARTITION):
                    await producer.send(topic, b"x%d" % number, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()

    all_partitions = [TopicPartition(t, p) for t in topics for p in range(partitions)]

    async def commit(index: int, group: str) -> int:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(all_partitions)
            offsets = {tp: committed_offset(index, tp.partition) for tp in all_partitions}
            await consumer.commit(offsets)
        finally:
            await consumer.stop()
        return sum(MESSAGES_PER_PARTITION - offset for offset in offsets.values())

    expected = 0
    for start in range(0, len(groups), 10):  # ten groups at a time: enough, and gentle
        batch = list(enumerate(groups))[start : start + 10]
        expected += sum(await asyncio.gather(*(commit(i, g) for i, g in batch)))
    return expected


async def wait_for_leaders(admin: Any, topics: list[str], partitions: int) -> None:
    """New partitions take a moment to get a leader; producing before that only retries."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        described = await admin.describe_topics(topics)
        led = sum(
            1
            for t in described
            for p in t["partitions"]
            if t["error_code"] == 0 and p["leader"] >= 0
        )
        if led == len(topics) * partitions:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the benchmark's partitions got no leader within 60 s")


def kafka_bootstrap() -> str:
    """KAFKA_BOOTSTRAP_SERVERS, else the broker `make services-up` wrote down."""
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    env_file = REPO / ".run" / "services.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "KAFKA_BOOTSTRAP_SERVERS":
                return value.strip()
    return load_settings().KAFKA_BOOTSTRAP_SERVERS


async def measure(bootstrap: str, prefix: str, rounds: int) -> dict[str, Any]:
    started = time.perf_counter()
    collector = OffsetsCollector(bootstrap, prefix)
    async with collector:
        await collector.start()
        connect = time.perf_counter() - started

        began = time.perf_counter()
        first = build_report(await collector.collect())
        first_round = time.perf_counter() - began

        warm: list[float] = []
        warm_cpu: list[float] = []  # this process's CPU, every thread (librdkafka's too)
        report = first
        for _ in range(rounds):
            began, began_cpu = time.perf_counter(), time.process_time()
            report = build_report(await collector.collect())
            warm.append(time.perf_counter() - began)
            warm_cpu.append(time.process_time() - began_cpu)
    return {
        "connect_seconds": round(connect, 4),
        "first_round_seconds": round(first_round, 4),
        "warm_round_seconds": {
            "median": round(statistics.median(warm), 4),
            "p95": round(sorted(warm)[max(0, int(len(warm) * 0.95) - 1)], 4),
            "max": round(max(warm), 4),
            "rounds": rounds,
        },
        # CPU, not wall time, is what a shared machine measures faithfully.
        "warm_round_cpu_seconds_median": round(statistics.median(warm_cpu), 4),
        "groups_seen": len(report.groups),
        "rows_seen": sum(len(g.partitions) for g in report.groups),
        "total_lag_seen": sum(g.lag for g in report.groups),
        "first_round_total_lag": sum(g.lag for g in first.groups),
    }


def time_cli(bootstrap: str, prefix: str) -> tuple[float, float, int]:
    """Wall and CPU time of `qbsync lag --json` (a fresh process), and the groups it printed."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "QBSYNC_TOPIC_PREFIX": prefix}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "qbsync.cli", "lag", "--json", "--sample-seconds", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    took = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    return took, cpu, len(json.loads(done.stdout)["groups"])


async def cleanup(bootstrap: str, topics: list[str]) -> None:
    async with kafka_admin(bootstrap) as admin:
        await admin.delete_topics(topics)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bootstrap = kafka_bootstrap()
    prefix = f"lagbench{uuid.uuid4().hex[:8]}."
    topics = [f"{prefix}topic-{n:02d}" for n in range(args.topics)]
    groups = [f"{prefix}group-{n:02d}" for n in range(args.groups)]
    try:
        expected_lag = await prepare(bootstrap, prefix, topics, args.partitions, groups)
        figures = await measure(bootstrap, prefix, args.rounds)
        cli_seconds, cli_cpu, cli_groups = await asyncio.to_thread(time_cli, bootstrap, prefix)
    finally:
        await cleanup(bootstrap, topics)
    worst = max(figures["first_round_seconds"], figures["warm_round_seconds"]["max"])
    correct = (
        figures["groups_seen"] == args.groups
        and figures["rows_seen"] == args.groups * args.topics * args.partitions
        and figures["total_lag_seen"] == expected_lag == figures["first_round_total_lag"]
        and cli_groups == args.groups
    )
    return {
        "benchmark": "lag collection (OffsetsCollector.collect + build_report)",
        "groups": args.groups,
        "topics": args.topics,
        "partitions": args.topics * args.partitions,
        "group_partition_rows": args.groups * args.topics * args.partitions,
        "expected_total_lag": expected_lag,
        **figures,
        "cli_lag_json_seconds": round(cli_seconds, 3),
        "cli_lag_json_cpu_seconds": round(cli_cpu, 3),
        "figures_match_commits": correct,
        "target_seconds": 1.0,
        "under_target": worst < 1.0,
        "broker": bootstrap,
        "cpu_count": os.cpu_count(),
    }


def main() -> int:
    # New partitions answer "not leader" for a moment after they have one; the producer
    # retries on its own, its warnings would only hide the figures.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=20, help="per topic")
    parser.add_argument("--rounds", type=int, default=20, help="warm rounds")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if results["figures_match_commits"] and results["under_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

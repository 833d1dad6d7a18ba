"""Benchmark: Sync Now of a realm of 100,000 customers against 100,000 Liscio accounts.

The whole path runs as processes, on the real broker and database of `make services-up`
with a database and a topic prefix of its own: `qbsync emulator` (limits raised so that
QuickBooks is not the bottleneck), the importer and the matcher (`python -m services.*`;
the pusher is left out: it would create the unmatched accounts in QuickBooks, another job).

1. 100,000 AccountEvents (bench/sync_scenario.py: half match a customer's name in another
   case, one in a thousand ambiguous) go to `liscio.account-events`; the matcher stores them.
2. The firm is connected (`store_connection`) and `qbsync sync --firm F --wait --json` runs:
   the importer pages through every customer to `qbo.customers`, the matcher stores them,
   links by name (then the first sync of every new link) and runs the push step.

Figures: wall times from the run's step timestamps (`sync_run_steps`), records per second
per stage, QuickBooks calls from the emulator's request log, peak memory (VmHWM, the
kernel's RSS high-water mark) of every process. Every count the run reports is checked
against what the scenario implies.

    make bench-sync                   # or:
    .venv/bin/python -m bench.sync_bench --customers 100000 --accounts 100000

Writes bench/results/sync.json and prints a table; exit 1 if the run was wrong or failed
(missed targets are reported, not an error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.proc_watch import ProcessWatch, database_backends
from bench.scratch import create_database, drop_database
from bench.sync_report import Figure, rate, seconds_between, table
from bench.sync_scenario import CUSTOMER_PREFIX, Scenario, account_event, customer_name
from qbsync.crypto import TokenCipher, new_secret_key
from qbsync.db import connect_pool, migrate
from qbsync.db.connections import store_connection
from qbsync.db.pool import Pool
from qbsync.emulator.admin_client import EmulatorAdmin
from qbsync.kafka.admin import connect_admin, ensure_topics
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import ACCOUNT_EVENTS, all_specs
from qbsync.waiting import wait_for_event
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess
from tests.support.stack import LocalStack

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "sync.json"
QBSYNC = str(Path(sys.executable).parent / "qbsync")
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
SECRET_KEY = new_secret_key()
IMPORTER_TARGET = 50_000.0  # customers imported per second
MATCHER_TARGET = 20_000.0  # records per second, each matcher stage
MEMORY_TARGET_MB = 300.0  # peak RSS per service
POLL_SECONDS = 0.05
# Stages between noted moments: CPU time of each process and the machine's busy share.
STAGES = {
    "accounts": ("accounts sending", "accounts stored"),
    "import": ("sync requested", "import done"),
    "customers": ("sync requested", "customers stored"),
    "match": ("customers stored", "match done"),
    "push": ("match done", "push done"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = await connect_admin(bootstrap, attempts=3)
    try:
        await admin.delete_topics([prefix + spec.name for spec in all_specs()])
    finally:
        await admin.close()


class Bench:
    def __init__(self, args: argparse.Namespace, stack: LocalStack, tag: str) -> None:
        self.args = args
        self.stack = stack
        self.prefix = f"syncbench{tag}."
        self.database = f"qbsync_bench_{tag}"
        self.firm_id = f"bench-firm-{tag}"
        self.processes: dict[str, ServiceProcess] = {}
        self.results: dict[str, Any] = {}

    # -- set-up -------------------------------------------------------------------------
    def start_emulator(self) -> str:
        port = free_port()
        argv = [
            QBSYNC,
            "emulator",
            "--port",
            str(port),
            "--empty",
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--max-requests",
            str(self.args.max_requests),
            "--max-in-flight",
            str(self.args.max_in_flight),
        ]
        self.processes["emulator"] = ServiceProcess("emulator", {}, argv)
        return f"http://127.0.0.1:{port}"

    def start_service(
        self, module: str, env: dict[str, str], name: str | None = None
    ) -> ServiceProcess:
        """`python -m <module>`, or under cProfile counting CPU time with --profile (the
        profile is written when the service stops: read it with pstats)."""
        if self.args.profile is None:
            return ServiceProcess(module, env)
        self.args.profile.mkdir(parents=True, exist_ok=True)
        output = self.args.profile / f"{name or module.split('.')[1]}.prof"
        argv = [sys.executable, "-m", "bench.cpu_profile", str(output), module]
        return ServiceProcess(module, env, argv)

    def service_env(self, database_url: str, base_url: str) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.stack.kafka_bootstrap,
            "DATABASE_URL": database_url,
            "QBSYNC_TOPIC_PREFIX": self.prefix,
            "QBSYNC_SECRET_KEY": SECRET_KEY,
            "QBSYNC_LOG_LEVEL": "INFO",
            "QBO_BASE_URL": base_url,
            "QBO_TOKEN_URL": base_url + "/oauth2/v1/tokens/bearer",
            "QBO_CLIENT_ID": CLIENT_ID,
            "QBO_CLIENT_SECRET": CLIENT_SECRET,
            # The services' own limiters follow the emulator's raised limits.
            "QBO_MAX_REQUESTS_PER_WINDOW": str(self.args.max_requests),
            "QBO_MAX_IN_FLIGHT": str(self.args.max_in_flight),
        }

    async def wait_started(self, admin: EmulatorAdmin) -> None:
        async def emulator_up() -> bool:
            try:
                await admin.webhook_deliveries()
                return True
            except Exception:
                return False

        await eventually(emulator_up, timeout=30, what="emulator answering")
        for name, process in self.processes.items():
            if name == "emulator":
                continue

            async def started(n: str = name, p: ServiceProcess = process) -> bool:
                if p.process.poll() is not None:
                    raise RuntimeError(f"{n} exited:\n{p.output()[-3000:]}")
                return '"started"' in p.output()

            await eventually(started, timeout=60, what=f"{name} started")

    async def wait_matcher_consuming(self, pool: Pool, producer: Producer) -> None:
        """One account of another firm, stored: the matcher has joined its group and its
        agents run, so the measurement does not include start-up."""
        warm_firm = f"{self.firm_id}-warm-up"
        scenario = Scenario(customers=1, accounts=2)
        account = next(iter(scenario.make_accounts()))
        await producer.send(
            ACCOUNT_EVENTS,
            f"{warm_firm}:{account.account_id}",
            account_event(warm_firm, account, datetime.now(UTC)),
        )

        async def stored() -> bool:
            return bool(
                await pool.fetchval("SELECT count(*) FROM accounts WHERE firm_id = $1", warm_firm)
            )

        await eventually(stored, timeout=120, interval=POLL_SECONDS, what="matcher consuming")

    # -- phase 1: accounts --------------------------------------------------------------
    async def store_accounts(
        self, pool: Pool, producer: Producer, scenario: Scenario, watch: ProcessWatch
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        events = [
            (f"{self.firm_id}:{a.account_id}", account_event(self.firm_id, a, now))
            for a in scenario.make_accounts()
        ]
        started = watch.note("accounts sending").at
        # Liscio's side, as fast as librdkafka sends, so the matcher is what is measured.
        batch = producer.batch(ACCOUNT_EVENTS)
        for key, value in events:
            batch.send(key, value)
        await batch.confirm()
        produced = time.time()

        async def all_stored() -> bool:
            count = await pool.fetchval(
                "SELECT count(*) FROM accounts WHERE firm_id = $1", self.firm_id
            )
            return bool(count >= scenario.accounts)

        await eventually(all_stored, timeout=600, interval=POLL_SECONDS, what="accounts stored")
        stored = watch.note("accounts stored").at
        span = await pool.fetchrow(
            "SELECT min(updated_at) AS first, max(updated_at) AS last, count(*) AS n"
            " FROM accounts WHERE firm_id = $1",
            self.firm_id,
        )
        assert span is not None  # an aggregate always answers one row
        return {
            "events": len(events),
            "bytes": sum(len(v) for _, v in events),
            "produce_seconds": round(produced - started, 3),
            "first_sent_to_all_stored_seconds": round(stored - started, 3),
            "stored_after_last_sent_seconds": round(stored - produced, 3),
            "stored": span["n"],
            "db_first_to_last_batch_seconds": round(
                seconds_between(span["first"], span["last"]), 3
            ),
        }

    # -- phase 2: Sync Now --------------------------------------------------------------
    async def sync_now(
        self, pool: Pool, env: dict[str, str], customers: int, watch: ProcessWatch
    ) -> dict[str, Any]:
        """`qbsync sync --wait --json`, noting the moments each step ends and the moment the
        matcher has stored every imported customer (the database holds this run alone).
        --staged: the matchers are paused (SIGSTOP) until the import step is done, so the
        importer has the machine to itself and the matchers then read the import's backlog:
        each stage measured alone."""
        done = asyncio.Event()
        matchers = [p.process for n, p in self.processes.items() if n.startswith("matcher")]
        if self.args.staged:
            for matcher in matchers:
                matcher.send_signal(signal.SIGSTOP)

        async def follow() -> None:
            while not done.is_set():
                paused = self.args.staged and "matchers resumed" not in watch.moments
                if paused and "import done" in watch.moments:
                    for matcher in matchers:
                        matcher.send_signal(signal.SIGCONT)
                    watch.note("matchers resumed")
                if "customers stored" not in watch.moments and customers <= await pool.fetchval(
                    "SELECT count(*) FROM customers WHERE seen_run_id IS NOT NULL"
                ):
                    watch.note("customers stored")
                for row in await pool.fetch(
                    "SELECT step FROM sync_run_steps WHERE status IN ('done', 'failed')"
                ):
                    if f"{row['step']} done" not in watch.moments:
                        watch.note(f"{row['step']} done")
                await wait_for_event(done, POLL_SECONDS)

        follower = asyncio.create_task(follow())
        began = watch.note("sync requested").at
        process = await asyncio.create_subprocess_exec(
            QBSYNC,
            "sync",
            "--firm",
            self.firm_id,
            "--wait",
            "--json",
            "--timeout",
            str(self.args.timeout),
            cwd=REPO,
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        ended = watch.note("run finished").at
        done.set()
        for matcher in matchers:  # an import that failed leaves them paused
            matcher.send_signal(signal.SIGCONT)
        await follower
        try:
            report: dict[str, Any] = json.loads(out)
        except ValueError:
            raise RuntimeError(f"qbsync sync printed no JSON: {err.decode()[-2000:]}") from None
        stored = watch.moments.get("customers stored")
        return {
            "cli_exit": process.returncode,
            "cli_wall_seconds": round(ended - began, 3),
            "report": report,
            "customers_all_stored_at": stored.at if stored else None,
        }

    async def run_timings(self, pool: Pool, run_id: str) -> dict[str, Any]:
        steps = {
            row["step"]: row
            for row in await pool.fetch(
                "SELECT step, started_at, finished_at FROM sync_run_steps WHERE run_id = $1",
                uuid.UUID(run_id),
            )
        }
        run = await pool.fetchrow(
            "SELECT requested_at, started_at, finished_at FROM sync_runs WHERE run_id = $1",
            uuid.UUID(run_id),
        )
        links = await pool.fetchrow(
            "SELECT count(*) AS n, min(linked_at) AS first, max(linked_at) AS last,"
            " max(first_synced_at) AS synced FROM links WHERE firm_id = $1",
            self.firm_id,
        )
        customers = await pool.fetchrow(
            "SELECT count(*) AS n, min(updated_at) AS first, max(updated_at) AS last"
            " FROM customers WHERE seen_run_id = $1",
            uuid.UUID(run_id),
        )
        ambiguities = await pool.fetchval(
            "SELECT count(*) FROM ambiguities WHERE firm_id = $1", self.firm_id
        )
        return {
            "steps": steps,
            "run": run,
            "links": links,
            "customers": customers,
            "ambiguities": ambiguities,
        }

    async def quickbooks_calls(self, admin: EmulatorAdmin, realm_id: str) -> dict[str, Any]:
        log = await admin.requests(realm_id)
        by_operation = Counter(entry["operation"] for entry in log)
        by_status = Counter(str(entry["status"]) for entry in log)
        return {
            "total": len(log),
            "by_operation": dict(by_operation),
            "by_status": dict(by_status),
            "throttled_429": by_status.get("429", 0),
        }

    # -- the whole run ------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        args = self.args
        database_url = await create_database(self.stack.database_url, self.database)
        stopping = asyncio.Event()
        watch: ProcessWatch | None = None
        watcher: asyncio.Task[None] | None = None
        pool = await connect_pool(database_url, attempts=3)
        producer = Producer(self.stack.kafka_bootstrap, self.prefix)
        admin: EmulatorAdmin | None = None
        try:
            await migrate(pool)
            await ensure_topics(self.stack.kafka_bootstrap, self.prefix)
            await producer.start(attempts=3)
            base_url = self.start_emulator()
            admin = EmulatorAdmin(base_url, timeout=300)
            env = self.service_env(database_url, base_url)
            self.processes["importer"] = self.start_service("services.importer", env)
            for n in range(1, args.matchers + 1):  # one consumer group: partitions are shared
                name = "matcher" if n == 1 else f"matcher-{n}"
                self.processes[name] = self.start_service("services.matcher", env, name)
            watch = ProcessWatch(
                {n: p.process.pid for n, p in self.processes.items()},
                # PostgreSQL's share of each stage, when it runs on this machine.
                groups={"postgres": lambda: database_backends(self.database)},
            )
            watcher = asyncio.create_task(watch.run(stopping))
            await self.wait_started(admin)

            realm = await admin.create_realm(contents="empty")
            realm_id = str(realm["realm_id"])
            seeded = await admin.bulk_customers(realm_id, args.customers, prefix=CUSTOMER_PREFIX)
            scenario = Scenario(args.customers, args.accounts, int(seeded["first_id"]))
            first = await admin.customer(realm_id, str(seeded["first_id"]))
            if not first or first["DisplayName"] != customer_name(scenario.first_customer_id):
                raise RuntimeError(f"bulk seeding names customers otherwise: {first}")
            await self.wait_matcher_consuming(pool, producer)
            watch.note("ready")

            accounts = await self.store_accounts(pool, producer, scenario, watch)

            await store_connection(
                pool, TokenCipher(SECRET_KEY), self.firm_id, realm_id, str(realm["refresh_token"])
            )
            await admin.clear_requests(realm_id)
            sync = await self.sync_now(pool, env, args.customers, watch)
            run_id = sync["report"]["run_id"]
            timings = await self.run_timings(pool, run_id)
            calls = await self.quickbooks_calls(admin, realm_id)
            limits = await admin.limits(realm_id)
            watch.sample()
            return self.figures(scenario, accounts, sync, timings, calls, limits, watch)
        finally:
            stopping.set()
            if watcher is not None:
                await watcher
            for process in self.processes.values():
                process.stop()
            if admin is not None:
                await admin.aclose()
            await producer.stop()
            await pool.close()
            if not args.keep:
                await drop_database(self.stack.database_url, self.database)
                await delete_topics(self.stack.kafka_bootstrap, self.prefix)

    def figures(
        self,
        scenario: Scenario,
        accounts: dict[str, Any],
        sync: dict[str, Any],
        timings: dict[str, Any],
        calls: dict[str, Any],
        limits: dict[str, Any],
        watch: ProcessWatch,
    ) -> dict[str, Any]:
        report = sync["report"]
        steps = timings["steps"]
        counts = {name: step["counts"] for name, step in report["steps"].items()}
        expected = scenario.expected()
        n_customers, n_accounts = scenario.customers, scenario.accounts

        def wall(step: str) -> float:
            return seconds_between(steps[step]["started_at"], steps[step]["finished_at"])

        import_seconds, match_seconds, push_seconds = wall("import"), wall("match"), wall("push")
        import_started = steps["import"]["started_at"].timestamp()
        all_stored = sync["customers_all_stored_at"]
        # Staged: from the moment the paused matchers resumed, with the whole import waiting.
        customers_from = watch.moments.get("matchers resumed")
        customers_started = customers_from.at if customers_from else import_started
        customers_seconds = (all_stored or float("nan")) - customers_started
        links = timings["links"]
        link_phase = seconds_between(steps["match"]["started_at"], links["last"])
        first_sync_phase = seconds_between(links["last"], steps["match"]["finished_at"])
        match_records = n_accounts + n_customers
        peak = watch.peak_mb()
        stage_moments = dict(STAGES)
        if customers_from:
            stage_moments["customers"] = ("matchers resumed", "customers stored")
        stages = {
            name: watch.between(start, end)
            for name, (start, end) in stage_moments.items()
            if start in watch.moments and end in watch.moments
        }

        def cpu(stage: str, process: str, records: int) -> str:
            """The process's own CPU time in the stage, and how busy the machine was."""
            if stage not in stages:
                return ""
            seconds = sum(  # every instance of the service
                used
                for name, used in stages[stage].cpu_seconds.items()
                if name == process or name.startswith(f"{process}-")
            )
            busy = stages[stage].machine_busy_share
            postgres = stages[stage].cpu_seconds.get("postgres", 0.0)
            return (
                f"; {process} CPU {seconds:.1f} s ({seconds / records * 1e6:.0f} µs/record),"
                f" PostgreSQL CPU {postgres:.1f} s (this run's backends),"
                f" both cores {busy:.0%} busy"
            )

        figures = [
            Figure(
                "importer: customers imported",
                rate(counts["import"].get("customers", 0), import_seconds),
                "/s",
                IMPORTER_TARGET,
                detail=f"{counts['import'].get('customers', 0):,} in {import_seconds:.2f} s"
                " (import step started_at -> finished_at)" + cpu("import", "importer", n_customers),
            ),
            Figure(
                "matcher: accounts stored",
                rate(accounts["stored"], accounts["first_sent_to_all_stored_seconds"]),
                "/s",
                MATCHER_TARGET,
                detail=f"{accounts['stored']:,} AccountEvents, first sent -> all in PostgreSQL"
                f" in {accounts['first_sent_to_all_stored_seconds']:.2f} s"
                + cpu("accounts", "matcher", n_accounts),
            ),
            Figure(
                "matcher: customers stored",
                rate(n_customers, customers_seconds) if all_stored else 0.0,
                "/s",
                MATCHER_TARGET,
                detail=f"{n_customers:,} from qbo.customers,"
                f" {'matchers resumed' if customers_from else 'import started'} -> all stored"
                f" in {customers_seconds:.2f} s" + cpu("customers", "matcher", n_customers),
            ),
            Figure(
                "matcher: match step",
                rate(match_records, match_seconds),
                "/s",
                MATCHER_TARGET,
                detail=f"{n_accounts:,} accounts + {n_customers:,} customers in"
                f" {match_seconds:.2f} s: linking {link_phase:.2f} s, first sync of"
                f" {links['n']:,} links {first_sync_phase:.2f} s"
                + cpu("match", "matcher", match_records),
            ),
        ]
        for name in peak:
            figures.append(
                Figure(
                    f"peak memory: {name}",
                    peak[name],
                    "MB",
                    None if name == "emulator" else MEMORY_TARGET_MB,
                    at_least=False,
                    detail="VmHWM" + ("" if name != "emulator" else " (not a service: no target)"),
                )
            )

        checks = {
            "run_done": report["status"] == "done",
            "customers_imported": counts["import"].get("customers") == n_customers,
            "customers_stored": timings["customers"]["n"] == n_customers,
            "accounts_stored": accounts["stored"] == n_accounts,
            "links": links["n"] == counts["match"].get("linked") == expected.links,
            "ambiguities": timings["ambiguities"]
            == counts["match"].get("ambiguous")
            == expected.ambiguities,
            "first_sync_quickbooks_writes": counts["match"].get("first_sync_quickbooks_writes")
            == expected.quickbooks_writes,
            "first_sync_liscio_fills": counts["match"].get("first_sync_liscio_fills")
            == expected.liscio_fills,
            "no_429": calls["throttled_429"] == 0,
        }
        return {
            "benchmark": "Sync Now: importer + matcher against the emulator",
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpu_count": os.cpu_count(),
            "staged": self.args.staged,
            "scenario": {
                "customers": n_customers,
                "accounts": n_accounts,
                "expected": asdict(expected),
            },
            "emulator_limits": limits,
            "figures": [f.as_dict() for f in figures],
            "table": table(figures),
            "wall_seconds": {
                "import": round(import_seconds, 3),
                "import_finished_to_match_started": round(
                    seconds_between(steps["import"]["finished_at"], steps["match"]["started_at"]),
                    3,
                ),
                "match": round(match_seconds, 3),
                "match_linking": round(link_phase, 3),
                "match_first_sync": round(first_sync_phase, 3),
                "push": round(push_seconds, 3),
                "run_requested_to_finished": round(
                    seconds_between(timings["run"]["requested_at"], timings["run"]["finished_at"]),
                    3,
                ),
                "qbsync_sync_cli": sync["cli_wall_seconds"],
                "customers_all_stored_after_import_finished": round(
                    (all_stored or float("nan")) - steps["import"]["finished_at"].timestamp(), 3
                ),
            },
            "accounts_phase": accounts,
            "run": report,
            "quickbooks_calls": calls,
            "peak_memory_mb": peak,
            "peak_memory_reached": watch.peak_during(),
            "stages": {name: asdict(stage) for name, stage in stages.items()},
            "rss_mb_at": {name: moment.rss_mb for name, moment in watch.moments.items()},
            "checks": checks,
            "correct": all(checks.values()),
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="per rate window")
    parser.add_argument("--max-in-flight", type=int, default=50)
    parser.add_argument("--matchers", type=int, default=1, help="matcher instances (one group)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds the run may take")
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    parser.add_argument(
        "--staged",
        action="store_true",
        help="pause the matchers during the import: each stage measured alone",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--profile", type=Path, help="run the services under cProfile, profiles to this folder"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    bench = Bench(args, LocalStack.from_environment(), uuid.uuid4().hex[:8])
    results = asyncio.run(bench.run())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "table"}, indent=2, default=str))
    print()
    print(results["table"])
    print(f"\nwritten to {os.path.relpath(args.output, Path.cwd())}", file=sys.stderr)
    if not results["correct"]:
        failed = [name for name, ok in results["checks"].items() if not ok]
        print(f"the run was WRONG: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

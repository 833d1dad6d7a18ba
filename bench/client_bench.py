"""Benchmark: 2,000 sparse customer updates through QuickBooksClient against the emulator.

The emulator runs as its own process (`qbsync emulator`) with 80 ms latency, QuickBooks'
real limits (500 requests per window, 10 in flight) and the window compressed to 6 s, so a
run covers several windows in seconds. Every figure about what the server saw (arrivals per
window, 429s) comes from the emulator's request log, not from the client's own view.

    make bench-client                       # or:
    .venv/bin/python -m bench.client_bench --updates 2000 --rate-window 6 --latency-ms 80

Writes bench/results/client.json and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.client_analysis import Arrival, percentile, summarise
from qbsync.emulator.admin_client import EmulatorAdmin, EmulatorAdminError
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.limiter import Limits
from qbsync.quickbooks.tokens import InMemoryTokenStore

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "client.json"
REALM = "4620816365255846180"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"
REFRESH_TOKEN = "bench-refresh-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RequestTiming:
    """Times each API round trip (request sent to answer headers received), apart from waits in
    the limiter: an aiohttp trace on the client's session."""

    seconds: list[float] = field(default_factory=list)

    def trace(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._started)
        config.on_request_end.append(self._ended)
        return config

    async def _started(
        self, _: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        context.began = time.perf_counter()

    async def _ended(
        self, _: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.url.path.startswith("/v3/"):
            self.seconds.append(time.perf_counter() - context.began)


class Emulator:
    """`qbsync emulator` as a child process, and its admin API."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [
            str(REPO / ".venv" / "bin" / "qbsync"),
            "emulator",
            "--port",
            str(self.port),
            "--realm",
            REALM,
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--refresh-token",
            REFRESH_TOKEN,
            "--latency-ms",
            str(args.latency_ms),
            "--jitter-ms",
            str(args.jitter_ms),
            "--rate-window",
            str(args.rate_window),
            "--max-requests",
            str(args.limit),
            "--max-in-flight",
            str(args.in_flight),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.admin = EmulatorAdmin(self.base_url)

    async def wait_until_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                raise RuntimeError(f"emulator exited: {err.decode()[-2000:]}")
            try:
                await self.admin.realm(REALM)
                return
            except (httpx.TransportError, EmulatorAdminError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("emulator did not come up")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await self.admin.aclose()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    emulator = Emulator(args)
    try:
        await emulator.wait_until_up()
        admin = emulator.admin
        await admin.bulk_customers(REALM, args.customers, prefix="Bench Customer")
        rows = await admin.customers(REALM)
        targets = [row for row in rows if row["DisplayName"].startswith("Bench Customer")]
        tokens = {row["Id"]: row["SyncToken"] for row in targets}
        await admin.clear_requests()
        await admin.reset_limit_counters(REALM)
        return await drive(args, emulator, list(tokens.items()))
    finally:
        await emulator.stop()


async def drive(
    args: argparse.Namespace, emulator: Emulator, customers: list[tuple[str, str]]
) -> dict[str, Any]:
    limits = Limits(
        max_per_window=args.limit,
        window_seconds=args.rate_window,
        max_in_flight=args.in_flight,
        safety_margin_seconds=args.margin,
    )
    timing = RequestTiming()
    client = QuickBooksClient(
        base_url=emulator.base_url,
        token_url=emulator.base_url + "/oauth2/v1/tokens/bearer",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        tokens=InMemoryTokenStore({REALM: REFRESH_TOKEN}),
        limits=limits,
        trace_configs=[timing.trace()],
    )
    # Each worker owns its customers, so it always holds the current SyncToken: one call per
    # change, as a caller that caches SyncTokens makes.
    work: list[list[tuple[str, str]]] = [customers[w :: args.workers] for w in range(args.workers)]
    per_worker = [
        args.updates // args.workers + (w < args.updates % args.workers)
        for w in range(args.workers)
    ]
    update_seconds: list[float] = []
    errors: list[str] = []

    async def worker(mine: list[tuple[str, str]], count: int) -> None:
        sync_tokens = dict(mine)
        ids = [customer_id for customer_id, _ in mine]
        for n in range(count):
            customer_id = ids[n % len(ids)]
            began = time.perf_counter()
            try:
                updated = await client.update_customer(
                    REALM,
                    customer_id,
                    sync_tokens[customer_id],
                    {"PrimaryPhone": {"FreeFormNumber": f"512-555-{n % 10000:04d}"}},
                    request_id=str(uuid.uuid4()),
                )
            except Exception as exc:  # reported, not hidden: the run's errors are a result
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            update_seconds.append(time.perf_counter() - began)
            sync_tokens[customer_id] = updated["SyncToken"]

    await client.tokens.access_token(REALM)  # the OAuth grant is not part of the measurement
    began = time.perf_counter()
    await asyncio.gather(
        *(worker(mine, count) for mine, count in zip(work, per_worker, strict=True))
    )
    elapsed = time.perf_counter() - began
    await client.aclose()

    log = await emulator.admin.requests(REALM)
    limits_seen = await emulator.admin.limits(REALM)
    arrivals = [Arrival(at=e["started_at"], cost=e["cost"], status=e["status"]) for e in log]
    server = summarise(arrivals, window=args.rate_window, limit=args.limit)
    return {
        "config": {
            "updates": args.updates,
            "customers": len(customers),
            "workers": args.workers,
            "latency_ms": args.latency_ms,
            "jitter_ms": args.jitter_ms,
            "rate_window_seconds": args.rate_window,
            "max_requests_per_window": args.limit,
            "max_in_flight": args.in_flight,
            "client_safety_margin_seconds": args.margin,
        },
        "updates_succeeded": len(update_seconds),
        "update_errors": len(errors),
        "first_errors": errors[:5],
        "elapsed_seconds": round(elapsed, 3),
        "updates_per_second": round(len(update_seconds) / elapsed, 2),
        "fraction_of_limit": _rounded(server["sustained_fraction_of_limit"]),
        "complete_windows_fraction_of_limit": _rounded(
            server["complete_windows_fraction_of_limit"]
        ),
        "mean_requests_per_window": server["mean_requests_per_window"],
        "complete_windows": server["complete_windows"],
        "requests_per_complete_window": server["requests_per_complete_window"],
        "busiest_rolling_window": server["busiest_rolling_window"],
        "throttled_429": server["throttled_429"],
        "server_errors_5xx": server["server_errors_5xx"],
        "requests_seen_by_emulator": server["requests_seen_by_emulator"],
        "emulator_peak_in_flight": limits_seen.get("peak_in_flight"),
        "emulator_throttled_total": limits_seen.get("throttled_total"),
        "request_latency_ms": _latency(timing.seconds),
        "update_latency_ms": _latency(update_seconds),
    }


def _rounded(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _latency(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    return {
        "p50": round(percentile(seconds, 0.50) * 1000, 1),
        "p99": round(percentile(seconds, 0.99) * 1000, 1),
        "max": round(max(seconds) * 1000, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=50, help="concurrent callers")
    parser.add_argument("--latency-ms", type=float, default=80.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--rate-window", type=float, default=6.0, help="seconds (60 in reality)")
    parser.add_argument("--limit", type=int, default=500, help="requests per window")
    parser.add_argument("--in-flight", type=int, default=10)
    parser.add_argument("--margin", type=float, default=0.0, help="client safety margin, s")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.customers < args.workers:
        parser.error("--customers must be at least --workers (each worker owns customers)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(run(args))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {os.path.relpath(args.output, Path.cwd())}", file=sys.stderr)
    return 0 if results["update_errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

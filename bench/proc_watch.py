"""What a benchmark reads from /proc about its processes and the machine: peak memory (VmHWM,
the kernel's RSS high-water mark), RSS and CPU time of each process, and how busy all CPUs
were. The machine is shared: CPU time and the machine's busy share between two moments
say how much of a stage's wall time was the stage's own work."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from qbsync.waiting import wait_for_event

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def process_status(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS in kB; empty once the process has ended."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0])
    return values


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process (not its children), None once it has ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def database_backends(database: str) -> list[int]:
    """PIDs of the PostgreSQL backends serving `database`, when the server runs on this
    machine (a backend's process title names its database: "postgres: user database ...")."""
    title = f" {database} ".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if command.startswith(b"postgres: ") and title in command:
            pids.append(int(entry.name))
    return pids


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all CPUs since boot, from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    ticks = [int(value) for value in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    total = sum(ticks[:8])  # guest time is already counted in user
    return (total - idle) / TICKS_PER_SECOND, total / TICKS_PER_SECOND


@dataclass(frozen=True)
class Moment:
    at: float
    rss_mb: dict[str, float]
    cpu_seconds: dict[str, float]
    machine_busy: float
    machine_total: float
    load_average: tuple[float, float, float]


@dataclass(frozen=True)
class Stage:
    """Between two moments: wall time, each process's CPU seconds, and the machine's busy
    share (1.0 = every CPU busy all the time, with our work or anyone else's)."""

    wall_seconds: float
    cpu_seconds: dict[str, float]
    machine_busy_share: float
    load_average_at_end: tuple[float, ...]


class ProcessWatch:
    """Samples the processes' peak memory until stopped, and notes moments on request.
    `groups`: CPU time only, summed over processes that come and go (a database's
    backends), each found anew at every sample; an ended one keeps its last reading."""

    def __init__(
        self, pids: dict[str, int], groups: dict[str, Callable[[], Iterable[int]]] | None = None
    ) -> None:
        self.pids = pids
        self.groups = groups or {}
        self.peak_kb: dict[str, int] = dict.fromkeys(pids, 0)
        self.peak_seen_at: dict[str, float] = dict.fromkeys(pids, 0.0)  # when it last grew
        self.moments: dict[str, Moment] = {}
        self._cpu: dict[str, float] = dict.fromkeys([*pids, *self.groups], 0.0)
        self._group_cpu: dict[str, dict[int, float]] = {name: {} for name in self.groups}

    def sample(self) -> None:
        for name, pid in self.pids.items():
            peak = process_status(pid).get("VmHWM", 0)
            if peak > self.peak_kb[name]:
                self.peak_kb[name], self.peak_seen_at[name] = peak, time.time()
            cpu = process_cpu_seconds(pid)
            if cpu is not None:  # an ended process keeps its last reading
                self._cpu[name] = cpu
        for name, find in self.groups.items():
            readings = self._group_cpu[name]
            for pid in find():
                cpu = process_cpu_seconds(pid)
                if cpu is not None:
                    readings[pid] = cpu
            self._cpu[name] = sum(readings.values())

    def note(self, moment: str) -> Moment:
        self.sample()
        busy, total = machine_cpu_seconds()
        noted = Moment(
            at=time.time(),
            rss_mb={
                name: round(process_status(pid).get("VmRSS", 0) / 1024, 1)
                for name, pid in self.pids.items()
            },
            cpu_seconds=dict(self._cpu),
            machine_busy=busy,
            machine_total=total,
            load_average=os.getloadavg(),
        )
        self.moments[moment] = noted
        return noted

    def between(self, start: str, end: str) -> Stage:
        a, b = self.moments[start], self.moments[end]
        total = b.machine_total - a.machine_total
        return Stage(
            wall_seconds=round(b.at - a.at, 3),
            cpu_seconds={
                name: round(b.cpu_seconds[name] - a.cpu_seconds[name], 2)
                for name in [*self.pids, *self.groups]
            },
            machine_busy_share=round((b.machine_busy - a.machine_busy) / total, 3)
            if total > 0
            else 0.0,
            load_average_at_end=tuple(round(x, 2) for x in b.load_average),
        )

    async def run(self, stopping: asyncio.Event, interval: float = 0.25) -> None:
        while not stopping.is_set():
            self.sample()
            await wait_for_event(stopping, interval)

    def peak_mb(self) -> dict[str, float]:
        return {name: round(kb / 1024, 1) for name, kb in self.peak_kb.items()}

    def peak_during(self) -> dict[str, str | None]:
        """The last noted moment before each process's peak was first seen."""
        during: dict[str, str | None] = {}
        for name, seen in self.peak_seen_at.items():
            before = [(m.at, moment) for moment, m in self.moments.items() if m.at <= seen]
            during[name] = f"after {max(before)[1]}" if before else None
        return during

"""Running a command on a pseudo-terminal, as a person would (rich then draws live)."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path


def interruptible() -> None:
    """In the child: SIGINT as in a terminal (a test run started in the background, without
    job control, ignores it, and the child would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_available(fd: int) -> bytes:
    """What the terminal's other end has written so far."""
    chunks = b""
    while select.select([fd], [], [], 0.1)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks += data
    return chunks


async def start_in_terminal(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, columns: int = 120
) -> tuple[asyncio.subprocess.Process, int]:
    """`argv` with a terminal of `columns` as its stdin, stdout and stderr; returns the
    process and the terminal's other end (read it with `read_available`, close it after)."""
    leader, follower = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**os.environ, **env, "COLUMNS": str(columns)},
        stdin=follower,
        stdout=follower,
        stderr=follower,
        preexec_fn=interruptible,
    )
    os.close(follower)
    return process, leader

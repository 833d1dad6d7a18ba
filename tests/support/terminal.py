"""Running a command on a pseudo-terminal, as a person would (rich then draws live)."""

from __future__ import annotations

import os
import select
import signal


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

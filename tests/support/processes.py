"""Services under test run as real processes: `python -m services.<name>` (or any
command line of the project, such as `qbsync emulator`)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.stack import REPO


def _die_with_parent() -> None:
    """In the child: killed when the process that started it dies (a test run that is
    killed must not leave services running against the shared broker and database)."""
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


PR_SET_PDEATHSIG = 1


class ServiceProcess:
    def __init__(self, module: str, env: dict[str, str], argv: list[str] | None = None) -> None:
        self.module = module
        self.log_path = Path(
            tempfile.mkstemp(prefix=f"{module.replace('.', '-')}-", suffix=".log")[1]
        )
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv or [sys.executable, "-m", module],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    # A consumer leaving a group while the others rebalance can take a while on a
    # loaded 2-core machine; a process that outlives this is killed and reported.
    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"{self.module} did not stop within {timeout}s on {sig!r}"
                ) from None
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()

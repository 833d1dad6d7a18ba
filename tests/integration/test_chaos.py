"""The short variant of `make chaos` (bench/chaos.py): one firm, a few SIGKILLed services
and one broker crash, about 90 s; then the oracle checks QuickBooks and Liscio against the
event history and the product rules, and the request log against the invariants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import REPO, LocalStack, Stack


@pytest.mark.timeout(480)
def test_nothing_lost_nothing_doubled_whatever_dies(stack: Stack, tmp_path: Path) -> None:
    if not isinstance(stack, LocalStack):
        pytest.skip("restarts the broker it runs on: needs the local stack (services.sh)")
    out = tmp_path / "chaos.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--quick", "--out", str(out)],
        cwd=REPO,
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "DATABASE_URL": stack.database_url,
        },
        capture_output=True,
        text=True,
        timeout=450,
    )
    assert out.exists(), run.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["kills_survived"] >= 2 and figures["broker_restarts"] == 1, figures
    assert figures["events_sent"] > 100 and figures["redeliveries"] > 0, figures
    assert figures["converged"], json.dumps(figures, indent=1)
    assert figures["duplicates"] == 0
    assert figures["lost_updates"] == figures["wrong_values"] == 0
    assert figures["dead_letters_for_valid_events"] == 0
    assert figures["history_violations"] == []
    assert figures["seconds_to_converge"] < 60
    assert run.returncode == 0

"""The demo's defects a new user met (issue 17): its simulated Liscio overwriting a newer
edit with a stale fill, and a traceback when Kafka or PostgreSQL cannot be reached."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime

from qbsync.config import REPO_ROOT
from qbsync.demo.liscio import LiscioAccount, LiscioStandIn
from qbsync.kafka.producer import Producer
from schemas import AccountCommand


def fill_command(firm_id: str, account_id: str, **fields: str) -> AccountCommand:
    return AccountCommand.model_validate(
        {
            "command_id": uuid.uuid4().hex,
            "type": "account.fill_fields",
            "firm_id": firm_id,
            "account_id": account_id,
            "fields": fields,
            "source": {"realm_id": "r-1", "customer_id": "c-1"},
            "issued_at": datetime.now(UTC),
        }
    )


async def test_a_stale_fill_never_overwrites_a_newer_edit(producer: Producer) -> None:
    firm = f"firm-{uuid.uuid4().hex[:8]}"
    liscio = LiscioStandIn(producer, "unused: commands are applied directly", firm)
    await liscio.create(LiscioAccount("acct-3", "Cool Cars"))
    # The first sync's fill was issued while the account had no phone; a person then typed one.
    stale = fill_command(firm, "acct-3", phone="(415) 555-9933", website="https://cars.example")
    await liscio.update("acct-3", phone="(650) 555-7777")

    await liscio.apply(stale)

    account = liscio.accounts["acct-3"]
    assert (account.phone, account.website) == ("(650) 555-7777", "https://cars.example")
    assert liscio.published[-1].account.phone == "(650) 555-7777"  # what Liscio announced
    published = len(liscio.published)
    await liscio.apply(fill_command(firm, "acct-3", phone="(415) 555-9933"))
    assert len(liscio.published) == published  # nothing left to fill: no change, no event


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_the_demo_says_in_one_line_that_a_dependency_is_unreachable() -> None:
    port = closed_port()
    finished = subprocess.run(
        [sys.executable, "-m", "qbsync.demo"],
        cwd=REPO_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "DATABASE_URL": f"postgresql://qbsync@127.0.0.1:{port}/postgres",
            "QBSYNC_CONNECT_ATTEMPTS": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 3, output
    assert "Traceback" not in output
    (line,) = [text for text in output.splitlines() if text.startswith("demo:")]
    assert str(port) in line and "cannot start" in line

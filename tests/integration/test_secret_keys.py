"""Rotating QBSYNC_SECRET_KEY: `qbsync connections rekey` re-encrypts every stored token
with the newest key, after which the old key can be dropped (issue 17)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest_asyncio

from qbsync.config import REPO_ROOT
from qbsync.crypto import TokenCipher, new_secret_key
from qbsync.db import connect_pool, migrate
from qbsync.db.connections import store_connection
from qbsync.db.pool import Pool
from tests.conftest import unique
from tests.support.stack import Stack


def qbsync(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qbsync.cli", *argv],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest_asyncio.fixture
async def own_database(stack: Stack) -> AsyncIterator[tuple[str, Pool]]:
    """A database of the test's own: a rekey touches every connection stored, and the
    session's are encrypted with the key the other tests' services use."""
    name = f"qbsync_keys_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(stack.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = urlunsplit(urlsplit(stack.database_url)._replace(path=f"/{name}"))
    pool = await connect_pool(url, attempts=3)
    await migrate(pool)
    yield url, pool
    await pool.close()
    admin = await asyncpg.connect(stack.database_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_rekey_moves_every_token_to_the_newest_key(
    own_database: tuple[str, Pool], service_env: dict[str, str]
) -> None:
    url, pool = own_database
    old, new = new_secret_key(), new_secret_key()
    firms = [unique("firm"), unique("firm")]
    for firm in firms:
        await store_connection(pool, TokenCipher(old), firm, unique("realm"), f"rt-{firm}")
    await pool.execute(
        "UPDATE connections SET access_token_enc = $2 WHERE firm_id = $1",
        firms[0],
        TokenCipher(old).encrypt(f"at-{firms[0]}"),
    )
    lost = unique("firm")  # encrypted with a key nobody has any more
    await store_connection(pool, TokenCipher(new_secret_key()), lost, unique("realm"), "rt")
    env = {**service_env, "DATABASE_URL": url, "QBSYNC_SECRET_KEY": f"{new},{old}"}

    done = qbsync(env, "connections", "rekey")

    # The others are re-encrypted all the same; the lost one is named, and the exit says so.
    assert done.returncode == 1
    assert (
        done.stdout.strip()
        == "2 connection(s) re-encrypted with the newest key of QBSYNC_SECRET_KEY"
    )
    assert done.stderr.strip().endswith(f"(those firms must reconnect): {lost}")
    only_new = TokenCipher(new)
    rows = await pool.fetch(
        "SELECT firm_id, refresh_token_enc, access_token_enc FROM connections"
        " WHERE firm_id = ANY($1::text[]) ORDER BY firm_id",
        firms,
    )
    assert {row["firm_id"]: only_new.decrypt(row["refresh_token_enc"]) for row in rows} == {
        firm: f"rt-{firm}" for firm in firms
    }
    accessed = {row["firm_id"]: row["access_token_enc"] for row in rows}
    assert only_new.decrypt(accessed[firms[0]]) == f"at-{firms[0]}"
    assert accessed[firms[1]] is None
    await pool.execute("DELETE FROM connections WHERE firm_id = $1", lost)
    assert qbsync(env, "connections", "rekey").returncode == 0


def test_a_passphrase_is_refused_in_one_line(service_env: dict[str, str]) -> None:
    done = qbsync({**service_env, "QBSYNC_SECRET_KEY": "test-secret"}, "connections", "rekey")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "qbsync: configuration error: QBSYNC_SECRET_KEY: the value is not a key: a key is 32"
        " random bytes in url-safe base64 (qbsync secret-key prints one)"
    ]
    printed = qbsync({"QBSYNC_SECRET_KEY": "test-secret"}, "secret-key")
    assert printed.returncode == 0
    TokenCipher(printed.stdout.strip())  # a usable key, printed even while the old is bad

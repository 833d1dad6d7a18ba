"""Rotating QBSYNC_SECRET_KEY: `qbsync connections rekey` re-encrypts every stored token
with the newest key, after which the old key can be dropped (issue 17)."""

from __future__ import annotations

import subprocess
import sys

from qbsync.config import REPO_ROOT
from qbsync.crypto import TokenCipher, new_secret_key
from qbsync.db.connections import store_connection
from qbsync.db.pool import Pool
from tests.conftest import unique


def qbsync(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qbsync.cli", *argv],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_rekey_moves_every_token_to_the_newest_key(
    pool: Pool, service_env: dict[str, str]
) -> None:
    old, new = new_secret_key(), new_secret_key()
    firms = [unique("firm"), unique("firm")]
    for firm in firms:
        await store_connection(pool, TokenCipher(old), firm, unique("realm"), f"rt-{firm}")
    await pool.execute(
        "UPDATE connections SET access_token_enc = $2 WHERE firm_id = $1",
        firms[0],
        TokenCipher(old).encrypt(f"at-{firms[0]}"),
    )

    done = qbsync({**service_env, "QBSYNC_SECRET_KEY": f"{new},{old}"}, "connections", "rekey")

    assert done.returncode == 0, done.stderr
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

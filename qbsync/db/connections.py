"""The firms' QuickBooks connections (table `connections`)."""

from __future__ import annotations

from dataclasses import dataclass

from qbsync.crypto import TokenCipher, TokenDecryptionError
from qbsync.db.pool import Db, Pool


@dataclass(frozen=True)
class QuickBooksConnection:
    """A firm's QuickBooks connection (its realm and whether it works), not a database one."""

    firm_id: str
    realm_id: str
    status: str
    status_reason: str | None

    @property
    def usable(self) -> bool:
        """Whether QuickBooks may be called for the firm (not waiting for a reconnect)."""
        return self.status == "connected"


async def store_connection(
    db: Db,
    cipher: TokenCipher,
    firm_id: str,
    realm_id: str,
    refresh_token: str,
) -> None:
    await db.execute(
        """
        INSERT INTO connections (firm_id, realm_id, refresh_token_enc)
        VALUES ($1, $2, $3)
        ON CONFLICT (firm_id) DO UPDATE
           SET realm_id = EXCLUDED.realm_id, refresh_token_enc = EXCLUDED.refresh_token_enc,
               access_token_enc = NULL, access_token_expires_at = NULL,
               status = 'connected', status_reason = NULL, updated_at = now()
        """,
        firm_id,
        realm_id,
        cipher.encrypt(refresh_token),
    )


async def remove_connection(db: Db, firm_id: str) -> bool:
    return (await db.execute("DELETE FROM connections WHERE firm_id = $1", firm_id)) != "DELETE 0"


async def get_connection(db: Db, firm_id: str) -> QuickBooksConnection | None:
    row = await db.fetchrow(
        "SELECT firm_id, realm_id, status, status_reason FROM connections WHERE firm_id = $1",
        firm_id,
    )
    return QuickBooksConnection(**dict(row)) if row else None


async def connection_of_realm(db: Db, realm_id: str) -> QuickBooksConnection | None:
    row = await db.fetchrow(
        "SELECT firm_id, realm_id, status, status_reason FROM connections WHERE realm_id = $1",
        realm_id,
    )
    return QuickBooksConnection(**dict(row)) if row else None


async def count_needing_reconnect(db: Db) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM connections WHERE status = 'needs_reconnect'"
    )
    return count


async def connected_realms(db: Db) -> list[tuple[str, str]]:
    """(firm_id, realm_id) of every usable connection."""
    rows = await db.fetch("SELECT firm_id, realm_id FROM connections WHERE status = 'connected'")
    return [(row["firm_id"], row["realm_id"]) for row in rows]


async def rekey_connections(pool: Pool, cipher: TokenCipher) -> tuple[int, list[str]]:
    """Re-encrypt every stored token with the cipher's newest key, in one transaction (a
    token refreshed meanwhile waits for it). Returns how many connections were re-encrypted
    and the firms whose tokens no key decrypts (left as they are: those firms must
    reconnect anyway, and they must not stop the others' rotation)."""
    undecryptable: list[str] = []
    rekeyed: list[tuple[str, bytes, bytes | None]] = []
    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(
            "SELECT firm_id, refresh_token_enc, access_token_enc FROM connections FOR UPDATE"
        )
        for row in rows:
            try:
                access = row["access_token_enc"]
                rekeyed.append(
                    (
                        row["firm_id"],
                        cipher.rekey(row["refresh_token_enc"]),
                        cipher.rekey(access) if access else None,
                    )
                )
            except TokenDecryptionError:
                undecryptable.append(row["firm_id"])
        await connection.executemany(
            "UPDATE connections SET refresh_token_enc = $2, access_token_enc = $3"
            " WHERE firm_id = $1",
            rekeyed,
        )
    return len(rekeyed), undecryptable

"""Tokens in the `connections` table, encrypted with QBSYNC_SECRET_KEY.

`rotate` locks the realm's row (SELECT ... FOR UPDATE) for the whole refresh call and writes
the rotated tokens in that same transaction: every process refreshing one realm queues on
the row, and the next one in finds fresh tokens instead of spending a refresh token that
QuickBooks has already rotated away. A process killed during the refresh releases the row
with its connection; one whose database went away after QuickBooks answered keeps the new
tokens and stores them once the database is back (unless another process stored tokens
meanwhile), instead of losing the only refresh token a strict issuer would still accept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from qbsync.crypto import TokenCipher, TokenDecryptionError
from qbsync.quickbooks.errors import NeedsReconnectError, NotConnectedError
from qbsync.quickbooks.tokens import Renewal, StoredTokens
from qbsync.retry import Backoff, is_transient

log = logging.getLogger("qbsync.quickbooks.tokens")

# How long a process keeps trying to store tokens QuickBooks returned while the database is
# away (a restart takes seconds); past it the next refresher relies on Intuit's grace.
RESCUE_SECONDS = 120.0

_SELECT = """
    SELECT refresh_token_enc, access_token_enc, access_token_expires_at, status, status_reason
      FROM connections WHERE realm_id = $1
"""

_UPDATE = """
    UPDATE connections
       SET refresh_token_enc = $2, access_token_enc = $3, access_token_expires_at = $4,
           updated_at = now()
     WHERE realm_id = $1
"""
# The same, only if the row still holds the refresh token the refresh spent (as stored:
# the cipher's output differs at every encryption, so equal bytes mean nobody wrote since).
_UPDATE_IF_UNCHANGED = _UPDATE + " AND refresh_token_enc = $5 AND status <> 'needs_reconnect'"


class PostgresTokenStore:
    def __init__(self, pool: asyncpg.Pool, cipher: TokenCipher) -> None:
        self._pool = pool
        self._cipher = cipher

    async def load(self, realm_id: str) -> StoredTokens:
        try:
            return self._decode(realm_id, await self._pool.fetchrow(_SELECT, realm_id))
        except _UnreadableTokens as exc:
            raise await self._marked(realm_id, exc) from None

    async def save(self, realm_id: str, tokens: StoredTokens) -> None:
        await self._write(self._pool, realm_id, tokens)

    async def mark_needs_reconnect(
        self, realm_id: str, reason: str, refused_refresh_token: str | None = None
    ) -> bool:
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(_SELECT + " FOR UPDATE", realm_id)
            if row is None:
                return False
            if refused_refresh_token is not None:
                try:
                    stored = self._cipher.decrypt(bytes(row["refresh_token_enc"]))
                except TokenDecryptionError:
                    stored = None
                if stored is not None and stored != refused_refresh_token:
                    return False  # another process stored a newer refresh token meanwhile
            await connection.execute(
                """
                UPDATE connections
                   SET status = 'needs_reconnect', status_reason = $2,
                       access_token_enc = NULL, access_token_expires_at = NULL,
                       updated_at = now()
                 WHERE realm_id = $1
                """,
                realm_id,
                reason,
            )
            return True

    async def rotate(self, realm_id: str, renew: Renewal) -> StoredTokens:
        renewed: StoredTokens | None = None
        spent: bytes | None = None  # the stored refresh token (encrypted) the refresh spent
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                row = await connection.fetchrow(_SELECT + " FOR UPDATE", realm_id)
                current = self._decode(realm_id, row)
                assert row is not None  # _decode raised otherwise
                spent = bytes(row["refresh_token_enc"])
                renewed = await renew(current)
                if renewed is not current:
                    await self._write(connection, realm_id, renewed)
                return renewed
        except _UnreadableTokens as exc:  # marked once the row's lock is released
            raise await self._marked(realm_id, exc) from None
        except Exception as exc:
            if renewed is None or spent is None or renewed is current or not is_transient(exc):
                raise
            # QuickBooks answered, and the transaction that was to store its answer is gone.
            await self._store_rescued(realm_id, renewed, spent, exc)
            return renewed

    async def _store_rescued(
        self, realm_id: str, renewed: StoredTokens, spent: bytes, failure: Exception
    ) -> None:
        log.warning(
            "the database went away while storing refreshed QuickBooks tokens; "
            "keeping them until it is back: %s",
            failure,
            extra={"realm_id": realm_id},
        )
        backoff = Backoff(first=0.5, cap=5.0)
        deadline = time.monotonic() + RESCUE_SECONDS
        while True:
            try:
                status = await self._write(self._pool, realm_id, renewed, unless_changed=spent)
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(backoff.next_delay())
                continue
            if status.endswith(" 0"):
                log.info(
                    "refreshed QuickBooks tokens not stored: another process stored tokens first",
                    extra={"realm_id": realm_id},
                )
            return

    async def _marked(self, realm_id: str, exc: _UnreadableTokens) -> NeedsReconnectError:
        """Tokens that no key of ours opens are as dead as a refused refresh token: the
        connection needs reconnecting, and only this realm stops."""
        await self.mark_needs_reconnect(realm_id, str(exc))
        return NeedsReconnectError(realm_id=realm_id, operation="load_tokens", message=str(exc))

    async def _write(
        self,
        db: asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy,
        realm_id: str,
        tokens: StoredTokens,
        unless_changed: bytes | None = None,
    ) -> str:
        """Store `tokens`; with `unless_changed`, only if the stored refresh token is still
        those bytes. The command's status ("UPDATE 1" / "UPDATE 0")."""
        values = (
            realm_id,
            self._cipher.encrypt(tokens.refresh_token),
            self._cipher.encrypt(tokens.access_token) if tokens.access_token else None,
            tokens.access_token_expires_at,
        )
        if unless_changed is None:
            return str(await db.execute(_UPDATE, *values))
        return str(await db.execute(_UPDATE_IF_UNCHANGED, *values, unless_changed))

    def _decode(self, realm_id: str, row: Any) -> StoredTokens:
        if row is None:
            raise NotConnectedError(
                realm_id=realm_id, operation="load_tokens", message="no stored connection"
            )
        if row["status"] == "needs_reconnect":
            raise NeedsReconnectError(
                realm_id=realm_id,
                operation="load_tokens",
                message="connection needs reconnecting",
                detail=row["status_reason"] or "",
            )
        access = row["access_token_enc"]
        try:
            return StoredTokens(
                refresh_token=self._cipher.decrypt(bytes(row["refresh_token_enc"])),
                access_token=self._cipher.decrypt(bytes(access)) if access is not None else None,
                access_token_expires_at=row["access_token_expires_at"],
            )
        except TokenDecryptionError as exc:
            raise _UnreadableTokens(str(exc)) from None


class _UnreadableTokens(Exception):
    """Raised inside the store only: the caller marks the connection, then raises
    NeedsReconnectError."""

"""Tokens in the `connections` table, encrypted with QBSYNC_SECRET_KEY.

`rotate` locks the realm's row (SELECT ... FOR UPDATE) for the whole refresh call and writes
the rotated tokens in that same transaction: every process refreshing one realm queues on
the row, and the next one in finds fresh tokens instead of spending a refresh token that
QuickBooks has already rotated away.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from qbsync.crypto import TokenCipher, TokenDecryptionError
from qbsync.quickbooks.errors import NeedsReconnectError, NotConnectedError
from qbsync.quickbooks.tokens import Renewal, StoredTokens

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

    async def mark_needs_reconnect(self, realm_id: str, reason: str) -> None:
        await self._pool.execute(
            """
            UPDATE connections
               SET status = 'needs_reconnect', status_reason = $2,
                   access_token_enc = NULL, access_token_expires_at = NULL, updated_at = now()
             WHERE realm_id = $1
            """,
            realm_id,
            reason,
        )

    async def rotate(self, realm_id: str, renew: Renewal) -> StoredTokens:
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                row = await connection.fetchrow(_SELECT + " FOR UPDATE", realm_id)
                current = self._decode(realm_id, row)
                renewed = await renew(current)
                if renewed is not current:
                    await self._write(connection, realm_id, renewed)
                return renewed
        except _UnreadableTokens as exc:  # marked once the row's lock is released
            raise await self._marked(realm_id, exc) from None

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
    ) -> None:
        await db.execute(
            _UPDATE,
            realm_id,
            self._cipher.encrypt(tokens.refresh_token),
            self._cipher.encrypt(tokens.access_token) if tokens.access_token else None,
            tokens.access_token_expires_at,
        )

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

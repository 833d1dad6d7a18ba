"""Where a realm's OAuth tokens live, and the in-memory store used by tests and the demo.

A store hands out the current tokens and, through `rotate`, runs a refresh while holding the
realm exclusively, saving what the refresh returned before letting anyone else in. That is
what makes a rotated refresh token safe: it is written as part of its own use, and a second
refresher (another coroutine or another process) sees the new tokens instead of spending the
old refresh token a second time.

One window stays, and no client can close it: Intuit has rotated the token and the process
dies before it stored the new one. Intuit keeps the previous refresh token working for 24
hours after it issues a new one (qbsync/emulator/tokens.py cites where), so the next
refresher, spending the stored (previous) token, gets the newest one back. The store's part
is to never drop tokens a refresh returned while it lives (a database that went away during
the refresh is waited out), and to mark a connection `needs_reconnect` only for the refresh
token it still holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from qbsync.quickbooks.errors import NeedsReconnectError, NotConnectedError


@dataclass(frozen=True)
class StoredTokens:
    refresh_token: str
    access_token: str | None = None
    # When we stop using the access token: already a safety margin before its real expiry.
    access_token_expires_at: datetime | None = None

    def usable_access_token(self, now: datetime) -> str | None:
        """The access token if it may still be sent at `now` (timezone-aware)."""
        if (
            self.access_token
            and self.access_token_expires_at
            and now < self.access_token_expires_at
        ):
            return self.access_token
        return None


Renewal = Callable[[StoredTokens], Awaitable[StoredTokens]]


class TokenStore(Protocol):
    async def load(self, realm_id: str) -> StoredTokens:
        """The current tokens; NeedsReconnectError (or NotConnectedError) if there are none."""
        ...

    async def save(self, realm_id: str, tokens: StoredTokens) -> None: ...

    async def mark_needs_reconnect(
        self, realm_id: str, reason: str, refused_refresh_token: str | None = None
    ) -> bool:
        """Mark the connection; with `refused_refresh_token`, only while that is still the
        stored refresh token (another process may have stored a newer one meanwhile).
        Whether it was marked."""
        ...

    async def rotate(self, realm_id: str, renew: Renewal) -> StoredTokens:
        """Hold the realm exclusively, call `renew(current)` and store its result (unless it
        returned `current` itself) before releasing. Returns what is stored afterwards."""
        ...


class InMemoryTokenStore:
    """Tokens in a dict; exclusive per realm within this event loop only."""

    def __init__(self, refresh_tokens: Mapping[str, str] | None = None) -> None:
        self._tokens: dict[str, StoredTokens] = {
            realm: StoredTokens(token) for realm, token in (refresh_tokens or {}).items()
        }
        self.reconnect_reasons: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def connect(self, realm_id: str, refresh_token: str) -> None:
        self._tokens[realm_id] = StoredTokens(refresh_token)
        self.reconnect_reasons.pop(realm_id, None)

    async def load(self, realm_id: str) -> StoredTokens:
        if realm_id in self.reconnect_reasons:
            raise NeedsReconnectError(
                realm_id=realm_id,
                operation="load_tokens",
                message="connection needs reconnecting",
                detail=self.reconnect_reasons[realm_id],
            )
        tokens = self._tokens.get(realm_id)
        if tokens is None:
            raise NotConnectedError(
                realm_id=realm_id, operation="load_tokens", message="no stored connection"
            )
        return tokens

    async def save(self, realm_id: str, tokens: StoredTokens) -> None:
        self._tokens[realm_id] = tokens

    async def mark_needs_reconnect(
        self, realm_id: str, reason: str, refused_refresh_token: str | None = None
    ) -> bool:
        stored = self._tokens.get(realm_id)
        if refused_refresh_token is not None and (
            stored is None or stored.refresh_token != refused_refresh_token
        ):
            return False
        self.reconnect_reasons[realm_id] = reason
        return True

    async def rotate(self, realm_id: str, renew: Renewal) -> StoredTokens:
        async with self._locks.setdefault(realm_id, asyncio.Lock()):
            current = await self.load(realm_id)
            renewed = await renew(current)
            if renewed is not current:
                await self.save(realm_id, renewed)
            return renewed

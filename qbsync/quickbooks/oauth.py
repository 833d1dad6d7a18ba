"""OAuth 2.0 access tokens for each realm: cached, refreshed once, rotated safely.

- An access token is reused until shortly before it expires (the margin is stored with it).
- Refreshes of one realm collapse into one: a per-realm asyncio lock in this process, and the
  TokenStore's exclusive `rotate` (a row lock in PostgreSQL) across processes. Whoever gets
  the lock second finds the new tokens already stored and does not refresh again.
- `invalid_grant` means the refresh token is dead: the connection is marked needs_reconnect
  and NeedsReconnectError is raised; no retry can help. Unless the stored refresh token is
  no longer the refused one (another process stored a newer one): then it is used instead.
- What Intuit answers is stored before its access token is used (qbsync/quickbooks/tokens.py
  says what remains of the crash window and why Intuit's grace closes it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from qbsync.metrics import QBO_REQUESTS, QBO_RETRIES
from qbsync.quickbooks.backoff import RetryPolicy, Sleep, parse_retry_after
from qbsync.quickbooks.errors import (
    AuthenticationError,
    NeedsReconnectError,
    QuickBooksError,
    ServerError,
    TransportError,
    error_from_response,
    parse_fault,
)
from qbsync.quickbooks.tokens import StoredTokens, TokenStore
from qbsync.quickbooks.transport import RETRYABLE_TRANSPORT_ERRORS, HttpClient

log = logging.getLogger("qbsync.quickbooks.oauth")

INTUIT_TOKEN_HOST = "oauth.platform.intuit.com"
INTUIT_REVOKE_URL = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
REFRESH = "refresh_token"


def revoke_url_for(token_url: str) -> str:
    """Intuit revokes at its own host; anything else (the emulator) beside its token URL."""
    parts = urlsplit(token_url)
    if parts.hostname == INTUIT_TOKEN_HOST:
        return INTUIT_REVOKE_URL
    return urlunsplit(parts._replace(path="/oauth2/v1/tokens/revoke", query=""))


def tokens_from_grant(
    grant: dict[str, Any], now: datetime, expiry_margin: float = 60.0
) -> StoredTokens:
    """StoredTokens from the token endpoint's JSON; the access token is used until a margin
    (at most a fifth of its life, so short-lived test tokens still get used) before expiry."""
    lifetime = float(grant.get("expires_in") or 3600)
    margin = min(expiry_margin, lifetime / 5)
    return StoredTokens(
        refresh_token=str(grant["refresh_token"]),
        access_token=str(grant["access_token"]),
        access_token_expires_at=now + timedelta(seconds=lifetime - margin),
    )


class TokenManager:
    def __init__(
        self,
        *,
        http: HttpClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        store: TokenStore,
        retry: RetryPolicy,
        revoke_url: str | None = None,
        expiry_margin: float = 60.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._sleep = sleep
        self._http = http
        self._token_url = token_url
        self._revoke_url = revoke_url or revoke_url_for(token_url)
        self._auth = (client_id, client_secret)
        self._store = store
        self._retry = retry
        self._expiry_margin = expiry_margin
        self._now = now
        self._cache: dict[str, StoredTokens] = {}
        # The access token this process last got from QuickBooks itself, per realm: only
        # one of these, refused, says the company withdrew the app (another process's
        # stored token may have ended with the rest).
        self._issued_here: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.refreshes = 0  # token requests this manager made (tests and diagnostics)

    def _lock(self, realm_id: str) -> asyncio.Lock:
        return self._locks.setdefault(realm_id, asyncio.Lock())

    def _cached(self, realm_id: str, not_this: str | None = None) -> str | None:
        cached = self._cache.get(realm_id)
        token = cached.usable_access_token(self._now()) if cached else None
        return token if token and token != not_this else None

    async def access_token(self, realm_id: str) -> str:
        """A usable access token, refreshing (once, whoever asks) when none is."""
        if token := self._cached(realm_id):
            return token
        async with self._lock(realm_id):
            if token := self._cached(realm_id):
                return token
            stored = await self._store.load(realm_id)
            if token := stored.usable_access_token(self._now()):
                self._cache[realm_id] = stored
                return token
            return await self._renew(realm_id, rejected=None)

    async def renew_after_rejection(self, realm_id: str, rejected: str) -> str:
        """QuickBooks answered 401 to `rejected`: a different, fresh token (refreshing only
        when nobody else has already)."""
        async with self._lock(realm_id):
            if token := self._cached(realm_id, not_this=rejected):
                return token
            return await self._renew(realm_id, rejected=rejected)

    def issued_here(self, realm_id: str, access_token: str) -> bool:
        """Whether this process got `access_token` from QuickBooks' token endpoint itself."""
        return self._issued_here.get(realm_id) == access_token

    async def mark_refused(self, realm_id: str, reason: str) -> None:
        """QuickBooks refused even a freshly refreshed access token: the connection needs
        reconnecting (as for a refused refresh token), and its tokens are not used again."""
        self._cache.pop(realm_id, None)
        if await self._store.mark_needs_reconnect(realm_id, reason):
            log.warning(
                "QuickBooks refused a fresh access token; connection needs reconnecting",
                extra={"realm_id": realm_id},
            )

    async def _renew(self, realm_id: str, rejected: str | None) -> str:
        # A refused refresh token that is no longer the stored one was spent by a process
        # whose newer token is stored now: one more round with that, not needs_reconnect.
        for _ in range(3):
            if token := await self._renew_once(realm_id, rejected):
                return token
        raise NeedsReconnectError(
            realm_id=realm_id,
            operation=REFRESH,
            message="refresh tokens kept being replaced while they were refused",
        )

    async def _renew_once(self, realm_id: str, rejected: str | None) -> str | None:
        """The new access token; None when the refused refresh token was replaced meanwhile."""
        refused: list[tuple[str, NeedsReconnectError]] = []
        exchanged: list[StoredTokens] = []

        async def renew(current: StoredTokens) -> StoredTokens:
            usable = current.usable_access_token(self._now())
            if usable and usable != rejected:
                return current  # another process refreshed while we waited for the lock
            try:
                exchanged.append(await self._exchange(realm_id, current.refresh_token))
                return exchanged[-1]
            except NeedsReconnectError as exc:
                refused.append((current.refresh_token, exc))
                raise

        try:
            renewed = await self._store.rotate(realm_id, renew)
        except NeedsReconnectError:
            self._cache.pop(realm_id, None)
            if not refused:
                raise  # the stored status said so, or the stored token is unreadable
            # Marked only after rotate released the row: marking inside would wait on it.
            spent, exc = refused[0]
            if not await self._store.mark_needs_reconnect(
                realm_id, f"{exc.code}: {exc.detail}", spent
            ):
                return None
            log.warning(
                "QuickBooks refused the refresh token; connection needs reconnecting",
                extra={"realm_id": realm_id, "code": exc.code},
            )
            raise
        self._cache[realm_id] = renewed
        assert renewed.access_token is not None
        if exchanged and exchanged[-1] is renewed:
            self._issued_here[realm_id] = renewed.access_token
        return renewed.access_token

    async def _exchange(self, realm_id: str, refresh_token: str) -> StoredTokens:
        """One refresh-token grant, retried on 429/5xx/network; never on other answers."""
        for attempt in range(1, self._retry.attempts + 1):
            failure: QuickBooksError
            retry_after: float | None = None
            try:
                response = await self._http.request(
                    "POST",
                    self._token_url,
                    form={"grant_type": "refresh_token", "refresh_token": refresh_token},
                    auth=self._auth,
                    headers={"Accept": "application/json"},
                )
            except RETRYABLE_TRANSPORT_ERRORS as exc:
                QBO_REQUESTS.labels(REFRESH, "error").inc()
                failure = TransportError(
                    realm_id=realm_id,
                    operation=REFRESH,
                    message=type(exc).__name__,
                    detail=str(exc),
                )
            else:
                QBO_REQUESTS.labels(REFRESH, str(response.status)).inc()
                self.refreshes += 1
                body = response.json()
                if response.status == 200 and isinstance(body, dict):
                    return tokens_from_grant(body, self._now(), self._expiry_margin)
                failure = self._grant_failure(realm_id, response.status, body)
                if not isinstance(failure, ServerError) and response.status != 429:
                    raise failure
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt == self._retry.attempts:
                raise failure
            delay = self._retry.delay(attempt, retry_after)
            QBO_RETRIES.labels(REFRESH, type(failure).__name__).inc()
            log.warning(
                "QuickBooks token refresh failed, retrying in %.2fs: %s",
                delay,
                failure,
                extra={"realm_id": realm_id, "attempt": attempt},
            )
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _grant_failure(realm_id: str, status: int, body: object) -> QuickBooksError:
        fault = parse_fault(body)
        code = fault.code if fault else None
        common: dict[str, Any] = {
            "realm_id": realm_id,
            "operation": REFRESH,
            "code": code,
            "message": fault.message if fault else "",
            "detail": fault.detail if fault else "",
            "status": status,
        }
        if code == "invalid_grant":
            return NeedsReconnectError(**common)
        if status >= 500 or status == 429:
            return error_from_response(
                realm_id=realm_id, operation=REFRESH, status=status, body=body
            )
        return AuthenticationError(**common)

    async def revoke(self, realm_id: str) -> bool:
        """Best effort: ask the OAuth server to revoke the realm's refresh token."""
        try:
            stored = await self._store.load(realm_id)
            response = await self._http.request(
                "POST",
                self._revoke_url,
                json_body={"token": stored.refresh_token},
                auth=self._auth,
                headers={"Accept": "application/json"},
            )
        except (TimeoutError, QuickBooksError, aiohttp.ClientError) as exc:
            log.warning("could not revoke QuickBooks tokens: %s", exc, extra={"realm_id": realm_id})
            return False
        finally:
            self._cache.pop(realm_id, None)
        QBO_REQUESTS.labels("revoke", str(response.status)).inc()
        if response.status != 200:
            log.warning(
                "QuickBooks refused to revoke tokens (HTTP %d)",
                response.status,
                extra={"realm_id": realm_id},
            )
        return response.status == 200

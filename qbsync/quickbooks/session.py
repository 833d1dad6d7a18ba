"""One QuickBooks API call: authenticated, inside the realm's limits, retried when that is safe.

Retried: 429 (honouring Retry-After, for as long as it lasts), 5xx, timeouts and
connection errors, with exponential backoff and full jitter, and a 401 after a token refresh
(see `_FRESH_TOKEN_SECONDS` for when it marks the firm instead). Never retried: any other
4xx. A write's `requestid` is part of `params` and therefore identical in every attempt, so
QuickBooks answers a retry of a write that did land with the first result instead of
writing again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from qbsync import tracing
from qbsync.metrics import (
    QBO_LIMITER_WAIT_SECONDS,
    QBO_REALM_CALLS,
    QBO_REQUESTS,
    QBO_RETRIES,
    QBO_THROTTLED,
)
from qbsync.quickbooks.backoff import RetryPolicy, Sleep, parse_retry_after
from qbsync.quickbooks.errors import (
    QuickBooksError,
    ServerError,
    TransportError,
    error_from_response,
)
from qbsync.quickbooks.limiter import Limiters, SharedLimiters
from qbsync.quickbooks.oauth import TokenManager
from qbsync.quickbooks.transport import RETRYABLE_TRANSPORT_ERRORS, HttpAnswer, HttpClient

log = logging.getLogger("qbsync.quickbooks")

# A 401 is answered by refreshing until a token this process got from QuickBooks itself is
# refused by a request sent right after (within _FRESH_TOKEN_SECONDS), twice: only then did
# the company withdraw the app. A token another process stored may have ended with the rest
# (make chaos: firms marked needs_reconnect through our own fault), and so may one that
# waited long for the realm's quota; at most _MOST_REFRESHES_PER_CALL refreshes in all.
_REFRESHES_PER_CALL = 2
_FRESH_TOKEN_SECONDS = 10.0
_MOST_REFRESHES_PER_CALL = 5

T = TypeVar("T")


async def _answered_before_cancelled(exchange: Coroutine[Any, Any, T]) -> T:
    """The exchange's answer; a caller cancelled meanwhile (an import's page asked ahead
    and no longer wanted) is cancelled only once the exchange has ended, so the request's
    slot is given back no sooner than QuickBooks stops counting it in flight."""
    task = asyncio.ensure_future(exchange)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_forget_outcome)
        await asyncio.wait({task})  # a second cancellation ends this wait
        raise


def _forget_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # nobody waits for it: not "never retrieved"


class ApiSession:
    def __init__(
        self,
        *,
        http: HttpClient,
        base_url: str,
        tokens: TokenManager,
        limiters: Limiters | SharedLimiters,
        retry: RetryPolicy,
        minor_version: int,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._clock = clock
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._limiters = limiters
        self._retry = retry
        self._minor_version = minor_version

    def url(self, realm_id: str, path: str) -> str:
        return f"{self._base_url}/v3/company/{realm_id}/{path}"

    async def call(
        self,
        realm_id: str,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        weight: int = 1,
        batch: bool = False,
    ) -> dict[str, Any]:
        """The decoded JSON answer, or the typed QuickBooksError once retries are spent.
        `weight` is how many calls the request counts as (a batch counts its items).
        One span covers the call, its retries included (no token, no body: realm and
        operation only)."""
        with tracing.span(
            f"quickbooks {operation}",
            attributes={
                "qbsync.realm_id": realm_id,
                "qbsync.quickbooks.operation": operation,
                "http.request.method": method,
            },
        ):
            return await self._call(
                realm_id,
                operation,
                method,
                path,
                params=params,
                json_body=json_body,
                weight=weight,
                batch=batch,
            )

    async def _call(
        self,
        realm_id: str,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json_body: Any,
        weight: int,
        batch: bool,
    ) -> dict[str, Any]:
        url = self.url(realm_id, path)
        query = {**(params or {}), "minorversion": str(self._minor_version)}
        limiter = self._limiters.for_realm(realm_id)
        # Intuit meters reads (query, read, CDC: all GETs); writes are not metered.
        metered = method == "GET"
        calls = QBO_REALM_CALLS.labels(realm_id, "true" if metered else "false")
        refreshes = 0
        refreshed_at: float | None = None
        attempt = 1
        throttled = 0
        while True:
            token = await self._tokens.access_token(realm_id)
            response: HttpAnswer | None = None
            transport_error: Exception | None = None
            async with limiter.slot(weight, batch=batch, metered=metered) as waited:
                QBO_LIMITER_WAIT_SECONDS.observe(waited)
                sent_at = self._clock()
                try:
                    response = await _answered_before_cancelled(
                        self._http.request(
                            method,
                            url,
                            params=query,
                            json_body=json_body,
                            headers={
                                "Authorization": f"Bearer {token}",
                                "Accept": "application/json",
                            },
                        )
                    )
                except RETRYABLE_TRANSPORT_ERRORS as exc:
                    transport_error = exc

            retry_after: float | None = None
            failure: QuickBooksError
            if response is None:
                QBO_REQUESTS.labels(operation, "error").inc()
                reason = (
                    "timeout" if isinstance(transport_error, asyncio.TimeoutError) else "connection"
                )
                failure = TransportError(
                    realm_id=realm_id,
                    operation=operation,
                    message=type(transport_error).__name__,
                    detail=str(transport_error),
                )
            else:
                status = response.status
                QBO_REQUESTS.labels(operation, str(status)).inc()
                calls.inc()
                body = response.json()
                if 200 <= status < 300:
                    return self._success(realm_id, operation, status, body)
                refused_fresh = (
                    refreshed_at is not None
                    and sent_at - refreshed_at < _FRESH_TOKEN_SECONDS
                    and self._tokens.issued_here(realm_id, token)
                )
                if status == 401 and (
                    refreshes < _REFRESHES_PER_CALL
                    or (not refused_fresh and refreshes < _MOST_REFRESHES_PER_CALL)
                ):
                    refreshes += 1
                    QBO_RETRIES.labels(operation, "unauthorized").inc()
                    log.warning(
                        "QuickBooks rejected the access token; refreshing and retrying",
                        extra={"realm_id": realm_id, "operation": operation},
                    )
                    await self._tokens.renew_after_rejection(realm_id, token)
                    refreshed_at = self._clock()
                    continue
                failure = error_from_response(
                    realm_id=realm_id, operation=operation, status=status, body=body
                )
                if status == 401:
                    if not refused_fresh:  # tokens kept ending while the call waited
                        raise ServerError(
                            realm_id=realm_id,
                            operation=operation,
                            message="access tokens kept ending before the call was sent",
                        ) from failure
                    # A token this process refreshed just now is refused too: the company
                    # withdrew the app's access, and only a person reconnecting brings it back.
                    await self._tokens.mark_refused(realm_id, str(failure))
                    raise failure
                if status == 429:
                    QBO_THROTTLED.labels(operation).inc()
                    reason = "throttled"
                elif status >= 500:
                    reason = "server_error"
                else:
                    raise failure
                retry_after = parse_retry_after(response.headers.get("Retry-After"))

            # Throttling is waited out much longer than other failures (an import or a first
            # sync must not fail for it): it has its own budget of attempts.
            if reason == "throttled":
                throttled += 1
                retry, budget = throttled, self._retry.throttled_attempts
            else:
                retry, budget = attempt, self._retry.attempts
            if retry >= budget:
                raise failure
            delay = self._retry.delay(retry, retry_after)
            QBO_RETRIES.labels(operation, reason).inc()
            log.warning(
                "QuickBooks %s for realm %s failed (%s), retry %d of %d in %.2fs",
                operation,
                realm_id,
                reason,
                retry,
                budget - 1,
                delay,
                extra={"realm_id": realm_id, "operation": operation, "reason": reason},
            )
            await self._sleep(delay)
            if reason != "throttled":
                attempt += 1

    @staticmethod
    def _success(realm_id: str, operation: str, status: int, body: object) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ServerError(
                realm_id=realm_id,
                operation=operation,
                message="answer is not a JSON object",
                status=status,
            )
        if "Fault" in body:  # QuickBooks sometimes reports a failure with a 200
            raise error_from_response(realm_id=realm_id, operation=operation, status=400, body=body)
        return body

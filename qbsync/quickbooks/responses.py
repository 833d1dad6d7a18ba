"""What the client's HTTP layers share about answers and failures."""

from __future__ import annotations

from typing import Any

import httpx

# Failures where QuickBooks may or may not have acted: safe to retry only because every
# write carries a requestid (reads are safe anyway).
RETRYABLE_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def json_or_none(response: httpx.Response) -> Any:
    """The decoded body, or None when it is not JSON (a proxy's HTML error page, say)."""
    try:
        return response.json()
    except ValueError:
        return None

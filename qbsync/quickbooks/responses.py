"""What the client's HTTP layers share about answers and failures."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

# Failures where QuickBooks may or may not have acted: safe to retry only because every
# write carries a requestid (reads are safe anyway).
RETRYABLE_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def json_or_none(response: httpx.Response) -> Any:
    """The decoded body, or None when it is not JSON (a proxy's HTML error page, say).
    orjson decodes an import's 1000-customer pages three times faster than json; what it
    refuses (a body in UTF-16, say) gets json's chance before it counts as not JSON."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        pass
    try:
        return response.json()
    except ValueError:
        return None

"""QuickBooks Online: the async client, its errors, OAuth, limits, webhooks and the
mapping between QuickBooks' Customer JSON and the project's own records."""

from qbsync.quickbooks.backoff import RetryPolicy
from qbsync.quickbooks.client import CustomerChanges, QuickBooksClient
from qbsync.quickbooks.errors import (
    AuthenticationError,
    DuplicateNameError,
    NeedsReconnectError,
    NotConnectedError,
    ObjectNotFoundError,
    QuickBooksError,
    QuickBooksValidationError,
    ServerError,
    StaleObjectError,
    ThrottledError,
    TransportError,
)
from qbsync.quickbooks.limiter import Limits
from qbsync.quickbooks.postgres_tokens import PostgresTokenStore
from qbsync.quickbooks.tokens import InMemoryTokenStore, StoredTokens, TokenStore

__all__ = [
    "AuthenticationError",
    "CustomerChanges",
    "DuplicateNameError",
    "InMemoryTokenStore",
    "Limits",
    "NeedsReconnectError",
    "NotConnectedError",
    "ObjectNotFoundError",
    "PostgresTokenStore",
    "QuickBooksClient",
    "QuickBooksError",
    "QuickBooksValidationError",
    "RetryPolicy",
    "ServerError",
    "StaleObjectError",
    "StoredTokens",
    "ThrottledError",
    "TokenStore",
    "TransportError",
]

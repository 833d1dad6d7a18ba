"""OAuth 2.0 as Intuit's token endpoint does it: refresh tokens that rotate on every use
(the one just used answers `invalid_grant` afterwards) and short-lived access tokens bound
to one realm."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

ACCESS_TOKEN_SECONDS = 3600.0
REFRESH_TOKEN_SECONDS = 8_726_400.0  # 101 days, what Intuit reports in x_refresh_token_expires_in


@dataclass(frozen=True)
class Grant:
    """What a successful refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int

    def body(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "x_refresh_token_expires_in": self.refresh_expires_in,
        }


@dataclass
class _Token:
    realm_id: str
    expires_at: float


class InvalidGrant(Exception):
    """The refresh token is unknown, already used (rotated away), revoked or expired."""


@dataclass
class TokenRegistry:
    access_token_seconds: float = ACCESS_TOKEN_SECONDS
    refresh_token_seconds: float = REFRESH_TOKEN_SECONDS
    _refresh: dict[str, _Token] = field(default_factory=dict)
    _access: dict[str, _Token] = field(default_factory=dict)

    def issue_refresh_token(self, realm_id: str, now: float, token: str | None = None) -> str:
        """A refresh token valid for `realm_id` (the admin API's and --refresh-token's way in)."""
        issued = token or _new_token("RT1-")
        self._refresh[issued] = _Token(realm_id, now + self.refresh_token_seconds)
        return issued

    def refresh(self, refresh_token: str, now: float) -> Grant:
        record = self._refresh.pop(refresh_token, None)
        if record is None or record.expires_at <= now:
            raise InvalidGrant(refresh_token)
        access = _new_token("eyJlbXVsYXRvciI6dHJ1ZX0.")
        self._access[access] = _Token(record.realm_id, now + self.access_token_seconds)
        rotated = self.issue_refresh_token(record.realm_id, now)
        self._forget_expired_access_tokens(now)
        return Grant(
            access_token=access,
            refresh_token=rotated,
            expires_in=round(self.access_token_seconds),
            refresh_expires_in=round(self.refresh_token_seconds),
        )

    def revoke(self, token: str) -> bool:
        """Revoke a refresh token (and the realm's access tokens) or one access token."""
        record = self._refresh.pop(token, None)
        if record is not None:
            self.expire_access_tokens(record.realm_id)
            return True
        return self._access.pop(token, None) is not None

    def realm_of(self, access_token: str, now: float) -> str | None:
        """The realm an access token opens, or None when it is unknown or expired."""
        record = self._access.get(access_token)
        if record is None or record.expires_at <= now:
            return None
        return record.realm_id

    def is_expired(self, access_token: str, now: float) -> bool:
        record = self._access.get(access_token)
        return record is not None and record.expires_at <= now

    def expire_access_tokens(self, realm_id: str) -> int:
        """Make every access token of a realm expire now; returns how many there were."""
        doomed = [token for token, record in self._access.items() if record.realm_id == realm_id]
        for token in doomed:
            self._access[token] = _Token(realm_id, 0.0)
        return len(doomed)

    def _forget_expired_access_tokens(self, now: float) -> None:
        if len(self._access) > 10_000:
            for token in [t for t, record in self._access.items() if record.expires_at <= now]:
                del self._access[token]


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(36)

"""OAuth 2.0 as Intuit's token endpoint does it: refresh tokens that rotate, and short-lived
access tokens bound to one realm.

What Intuit documents about rotation, and what this registry does by default:
- "When you request a fresh access_token, always use the refresh token returned in the most
  recent token_endpoint response. Your previous refresh tokens expire 24 hours after you
  receive a new one." (Intuit's own OAuth client, intuit/oauth-jsclient, README, "Refresh
  access_token"). So a refresh token that was rotated away keeps working for
  `previous_token_seconds` (24 h); a refresh with it answers the newest refresh token of
  its grant (the chain never forks) and a new access token.
- "the value of refresh token can change every 24-26 hour period" (Intuit, answering
  intuit/oauth-jsclient#74): in between, a refresh answers the same refresh token.
  `rotation_seconds` is that period; the emulator's default is 0 (a new refresh token at
  every refresh), so every test meets a rotation instead of one a day.
- Strict mode, `previous_token_seconds=0`: the token just rotated away answers
  `invalid_grant` at once, as a strict rotating issuer (and Intuit's help article
  "Validity of Refresh Token": "if a new Refresh Token is returned, the previous one
  expires") would; the tests of the crash window use it.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

ACCESS_TOKEN_SECONDS = 3600.0
REFRESH_TOKEN_SECONDS = 8_726_400.0  # 101 days, what Intuit reports in x_refresh_token_expires_in
PREVIOUS_TOKEN_SECONDS = 86_400.0  # "Your previous refresh tokens expire 24 hours after ..."


@dataclass(frozen=True)
class RotationSettings:
    rotation_seconds: float = 0.0  # a refresh token this young is answered again, not rotated
    previous_token_seconds: float = PREVIOUS_TOKEN_SECONDS  # 0: strict, dead once rotated
    hold_answers: bool = False  # token answers wait (rotation applied) until released

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> RotationSettings:
        """A copy with `changes` applied; ValueError for unknown names or bad values."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown token setting(s): {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            if name == "hold_answers":
                if not isinstance(value, bool):
                    raise ValueError("hold_answers must be true or false")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
        return replace(self, **changes)


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


@dataclass
class _Chain:
    """One grant (one connection of one realm): its newest refresh token and its age."""

    realm_id: str
    newest: str
    newest_issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class _RefreshToken:
    chain: _Chain
    superseded_at: float | None = None  # when a newer token of its chain was issued


class InvalidGrant(Exception):
    """The refresh token is unknown, rotated away (past its grace), revoked or expired."""


@dataclass
class TokenRegistry:
    access_token_seconds: float = ACCESS_TOKEN_SECONDS
    refresh_token_seconds: float = REFRESH_TOKEN_SECONDS
    rotation: RotationSettings = field(default_factory=RotationSettings)
    _refresh: dict[str, _RefreshToken] = field(default_factory=dict)
    _access: dict[str, _Token] = field(default_factory=dict)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0  # token answers waiting for release_held (hold_answers)

    def issue_refresh_token(self, realm_id: str, now: float, token: str | None = None) -> str:
        """A refresh token of a new grant for `realm_id` (the admin API's and
        --refresh-token's way in)."""
        issued = token or _new_token("RT1-")
        chain = _Chain(realm_id, issued, now, now + self.refresh_token_seconds)
        self._refresh[issued] = _RefreshToken(chain)
        return issued

    def refresh(self, refresh_token: str, now: float) -> Grant:
        record = self._refresh.get(refresh_token)
        if record is None or record.chain.revoked or record.chain.expires_at <= now:
            raise InvalidGrant(refresh_token)
        chain = record.chain
        if record.superseded_at is not None:
            if now >= record.superseded_at + self.rotation.previous_token_seconds:
                raise InvalidGrant(refresh_token)
        elif now - chain.newest_issued_at >= self.rotation.rotation_seconds:
            self._rotate(chain, now)
        access = _new_token("eyJlbXVsYXRvciI6dHJ1ZX0.")
        self._access[access] = _Token(chain.realm_id, now + self.access_token_seconds)
        self._forget_expired_access_tokens(now)
        return Grant(
            access_token=access,
            refresh_token=chain.newest,
            expires_in=round(self.access_token_seconds),
            refresh_expires_in=round(chain.expires_at - now),
        )

    def _rotate(self, chain: _Chain, now: float) -> None:
        self._refresh[chain.newest].superseded_at = now
        if self.rotation.previous_token_seconds == 0:
            del self._refresh[chain.newest]
        chain.newest = _new_token("RT1-")
        chain.newest_issued_at = now
        # Intuit's refresh tokens last 100 days from their last use (five years at most).
        chain.expires_at = now + self.refresh_token_seconds
        self._refresh[chain.newest] = _RefreshToken(chain)

    def newest_refresh_token(self, refresh_token: str) -> str | None:
        """The newest refresh token of the grant `refresh_token` belongs to (tests)."""
        record = self._refresh.get(refresh_token)
        return record.chain.newest if record else None

    def revoke(self, token: str) -> bool:
        """Revoke a refresh token's grant (and the realm's access tokens) or one access
        token."""
        record = self._refresh.get(token)
        if record is not None:
            record.chain.revoked = True
            self.expire_access_tokens(record.chain.realm_id)
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

    # Holding answers: the refresh is applied at once, its answer waits. A client killed
    # meanwhile is one that Intuit answered and that never stored what it got.
    async def hold(self) -> None:
        if not self.rotation.hold_answers:
            return
        self.held += 1
        try:
            await self._released.wait()
        finally:
            self.held -= 1

    def release_held(self) -> None:
        """Answer every held refresh now, and hold no more."""
        self.rotation = replace(self.rotation, hold_answers=False)
        self._released.set()
        self._released = asyncio.Event()

    def _forget_expired_access_tokens(self, now: float) -> None:
        if len(self._access) > 10_000:
            for token in [t for t, record in self._access.items() if record.expires_at <= now]:
                del self._access[token]


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(36)

"""Authorization in one place: the `firm_access` dependency every `/v1/firms/{firm_id}`
route gets from its router.

- 401: no valid token (missing, malformed, badly signed, expired, without `exp`, `sub`,
  `firm_id` or `role`, or a role other than admin and staff);
- 404: a firm other than the token's, answered exactly as for a firm that does not exist
  (a 403 would say the firm exists);
- 403: a write (any method but GET and HEAD) by staff.

Handlers that need the caller take `Access` (or `AdminAccess`, which says so in the code);
FastAPI evaluates the dependency once per request however many times it is named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

import jwt
from fastapi import Depends, Request

from qbsync.config import Settings
from services.api.deps import ApiDeps, get_deps
from services.api.ids import FirmId
from services.api.problems import forbidden, not_found, unauthorized

Role = Literal["admin", "staff"]
ROLES: tuple[Role, ...] = ("admin", "staff")
READ_METHODS = frozenset({"GET", "HEAD"})
REQUIRED_CLAIMS = ["exp", "sub", "firm_id", "role"]


@dataclass(frozen=True)
class Claims:
    user: str
    firm_id: str
    role: Role


@dataclass(frozen=True)
class FirmAccess:
    """Who is asking, for which firm (the path's, which is the token's), in which role."""

    user: str
    firm_id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class TokenVerifier:
    """Checks Liscio's JWTs: HS256 with QBSYNC_API_JWT_SECRET, or RS256 with
    QBSYNC_API_JWT_PUBLIC_KEY (only the configured algorithm is accepted)."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm, self.key = settings.api_token_key()

    def claims(self, authorization: str | None) -> Claims:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("an Authorization: Bearer <token> header is required")
        try:
            payload: dict[str, Any] = jwt.decode(
                token.strip(),
                self.key,
                algorithms=[self.algorithm],
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise unauthorized(f"the token is not valid: {exc}") from None
        user, firm_id, role = payload["sub"], payload["firm_id"], payload["role"]
        if not isinstance(user, str) or not user or not isinstance(firm_id, str) or not firm_id:
            raise unauthorized("the token's sub and firm_id must be non-empty strings")
        if role not in ROLES:
            raise unauthorized("the token's role must be admin or staff")
        return Claims(user, firm_id, cast(Role, role))


async def firm_access(
    request: Request,
    firm_id: FirmId,
    deps: Annotated[ApiDeps, Depends(get_deps)],
) -> FirmAccess:
    claims = deps.tokens.claims(request.headers.get("authorization"))
    # Named in the request's log line (services/api/observe.py), whatever the outcome.
    request.state.user = claims.user
    request.state.firm_id = claims.firm_id
    if claims.firm_id != firm_id or not await deps.uow.direct.firms.exists(firm_id):
        raise not_found(f"firm {firm_id!r} does not exist")
    if request.method not in READ_METHODS and claims.role != "admin":
        raise forbidden("only a firm admin may change anything")
    return FirmAccess(claims.user, firm_id, claims.role)


async def require_admin(access: Annotated[FirmAccess, Depends(firm_access)]) -> FirmAccess:
    """For a write route: says in its signature what `firm_access` enforces for it."""
    if not access.is_admin:
        raise forbidden("only a firm admin may change anything")
    return access


Access = Annotated[FirmAccess, Depends(firm_access)]
AdminAccess = Annotated[FirmAccess, Depends(require_admin)]

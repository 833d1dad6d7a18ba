"""The emulator's whole state: realms with their limiters and fault settings, OAuth tokens,
the request log and the webhook notifier."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, replace

from qbsync.emulator import clock, seed
from qbsync.emulator.config import EmulatorConfig
from qbsync.emulator.faults import FaultSettings
from qbsync.emulator.limits import RealmLimiter
from qbsync.emulator.realm import Realm
from qbsync.emulator.requestlog import RequestLog
from qbsync.emulator.tokens import TokenRegistry
from qbsync.emulator.webhooks import WebhookNotifier

SANDBOX = "sandbox"
EMPTY = "empty"


@dataclass
class RealmState:
    realm: Realm
    limiter: RealmLimiter
    faults: FaultSettings
    # Writes under way, by requestid: a retry that arrives meanwhile waits for the first.
    writes_in_progress: dict[str, asyncio.Future[tuple[int, bytes]]] = field(default_factory=dict)


class Store:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.realms: dict[str, RealmState] = {}
        self.tokens = TokenRegistry(
            access_token_seconds=config.access_token_seconds, rotation=config.rotation()
        )
        self.log = RequestLog()
        self.webhooks = WebhookNotifier(config.webhooks())
        self.rng = random.Random(config.random_seed)
        # QuickBooks company ids are unique everywhere, so realms of two emulators never
        # share an id either (tests keep realms of several emulators in one database).
        self._next_realm_number = random.SystemRandom().randrange(10**8) * 10 + 1
        self.create_realm(config.realm_id, SANDBOX if config.seed_realm else EMPTY)
        self.initial_refresh_token = self.tokens.issue_refresh_token(
            config.realm_id, clock.now(), config.refresh_token
        )

    def get(self, realm_id: str) -> RealmState | None:
        return self.realms.get(realm_id)

    def create_realm(self, realm_id: str | None = None, contents: str = SANDBOX) -> RealmState:
        """Create a realm, or reset an existing one (its limits and faults back to the
        defaults, its data to `contents`: "sandbox" or "empty")."""
        if contents not in (SANDBOX, EMPTY):
            raise ValueError(f"contents must be {SANDBOX!r} or {EMPTY!r}")
        if realm_id is None:
            realm_id = self._new_realm_id()
        now = clock.now()
        realm = Realm(realm_id, created_at=now, listener=self.webhooks.notify)
        seed.seed_chart_of_accounts(realm, now)
        if contents == SANDBOX:
            seed.seed_sandbox(realm, now)
        state = RealmState(
            realm=realm,
            limiter=RealmLimiter(replace(self.config.limits())),
            faults=self.config.faults(),
        )
        self.realms[realm_id] = state
        return state

    def _new_realm_id(self) -> str:
        while True:
            candidate = f"9341455{self._next_realm_number:09d}"
            self._next_realm_number += 1
            if candidate not in self.realms:
                return candidate

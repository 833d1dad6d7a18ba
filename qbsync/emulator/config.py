"""Everything the emulator can be told at start (the CLI flags map onto these one to one)."""

from __future__ import annotations

from dataclasses import dataclass

from qbsync.emulator.faults import FaultSettings
from qbsync.emulator.limits import (
    DEFAULT_MAX_BATCHES_PER_WINDOW,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_REQUESTS_PER_WINDOW,
    DEFAULT_WINDOW_SECONDS,
    LimitSettings,
)
from qbsync.emulator.tokens import ACCESS_TOKEN_SECONDS, PREVIOUS_TOKEN_SECONDS, RotationSettings
from qbsync.emulator.webhooks import WebhookSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_REALM_ID = "9341455130166501"
DEFAULT_CLIENT_ID = "emulator-client-id"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"
DEFAULT_REFRESH_TOKEN = "emulator-refresh-token"


@dataclass(frozen=True)
class EmulatorConfig:
    host: str = DEFAULT_HOST
    port: int = 0  # 0: any free port (the in-process runner's default)
    realm_id: str = DEFAULT_REALM_ID
    seed_realm: bool = True  # False: the demo realm starts empty instead of sandbox-like
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    refresh_token: str | None = None  # valid for realm_id from the start; generated when None
    access_token_seconds: float = ACCESS_TOKEN_SECONDS
    refresh_token_rotation_seconds: float = 0.0  # Intuit: 24-26 h; 0: rotate at every refresh
    previous_refresh_token_seconds: float = PREVIOUS_TOKEN_SECONDS  # 0: strict rotation
    max_requests_per_window: int = DEFAULT_MAX_REQUESTS_PER_WINDOW
    rate_window_seconds: float = DEFAULT_WINDOW_SECONDS
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_batches_per_window: int = DEFAULT_MAX_BATCHES_PER_WINDOW
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fault_5xx_rate: float = 0.0
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 5000.0
    webhook_url: str | None = None
    webhook_verifier_token: str | None = None
    webhook_batch_ms: float = 200.0
    random_seed: int = 0  # makes jitter and injected faults repeatable

    def rotation(self) -> RotationSettings:
        return RotationSettings(
            rotation_seconds=self.refresh_token_rotation_seconds,
            previous_token_seconds=self.previous_refresh_token_seconds,
        )

    def limits(self) -> LimitSettings:
        return LimitSettings(
            max_requests_per_window=self.max_requests_per_window,
            window_seconds=self.rate_window_seconds,
            max_in_flight=self.max_in_flight,
            max_batches_per_window=self.max_batches_per_window,
        )

    def faults(self) -> FaultSettings:
        return FaultSettings(
            latency_ms=self.latency_ms,
            jitter_ms=self.jitter_ms,
            fault_5xx_rate=self.fault_5xx_rate,
            drop_rate=self.drop_rate,
            slow_rate=self.slow_rate,
            slow_ms=self.slow_ms,
        )

    def webhooks(self) -> WebhookSettings:
        return WebhookSettings(
            url=self.webhook_url,
            verifier_token=self.webhook_verifier_token,
            batch_ms=self.webhook_batch_ms,
        )

"""Configuration from environment variables (see the table in README.md).

Every process reads its settings once, through `load_settings()`; a missing or invalid
variable becomes a ConfigurationError that names it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qbsync.crypto import secret_keys
from qbsync.errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_ENV_FILE = REPO_ROOT / ".run" / "services.env"


def _local_service(variable: str, otherwise: str) -> str:
    """The address `make services-up` wrote for `variable`, so a developer (and `make run`)
    needs no exports and follows the ports the services were started on."""
    if SERVICES_ENV_FILE.exists():
        for line in SERVICES_ENV_FILE.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == variable:
                return value.strip()
    return otherwise


def _local_kafka() -> str:
    return _local_service("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")


def _local_database_url() -> str:
    return _local_service("DATABASE_URL", "postgresql://qbsync@127.0.0.1:54329/postgres")


class Settings(BaseSettings):
    """All settings of every process. Names are the environment variables' names."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    KAFKA_BOOTSTRAP_SERVERS: str = Field(default_factory=_local_kafka)
    DATABASE_URL: str = Field(default_factory=_local_database_url)
    QBO_BASE_URL: str = "https://quickbooks.api.intuit.com"
    QBO_TOKEN_URL: str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    QBO_CLIENT_ID: str | None = None
    QBO_CLIENT_SECRET: str | None = None
    QBO_WEBHOOK_VERIFIER_TOKEN: str | None = None
    QBSYNC_SECRET_KEY: str | None = None

    # Extensions of the contract (all optional).
    QBO_MINOR_VERSION: int = Field(default=75, ge=1)
    QBO_MAX_REQUESTS_PER_WINDOW: int = Field(default=500, ge=1)
    QBO_RATE_WINDOW_SECONDS: float = Field(default=60.0, gt=0)
    QBO_MAX_IN_FLIGHT: int = Field(default=10, ge=1)
    # "deployment": the limits above are shared by every process (a PostgreSQL ledger);
    # "process": each process keeps them alone (one process per realm only).
    QBO_QUOTA_SCOPE: Literal["deployment", "process"] = "deployment"
    # Metered reads a month included for the app (Intuit's Builder tier), for `qbsync usage`.
    QBO_MONTHLY_READ_ALLOWANCE: int = Field(default=500_000, ge=0)
    QBO_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    QBSYNC_TOPIC_PREFIX: str = ""
    QBSYNC_HTTP_PORT: int = Field(default=0, ge=0, le=65535)
    QBSYNC_HTTP_HOST: str = "127.0.0.1"
    QBSYNC_LOG_LEVEL: str = "INFO"
    # CDC is the safety net behind webhooks: each poll of a realm is a metered read.
    QBSYNC_CDC_INTERVAL_SECONDS: float = Field(default=1800.0, gt=0)
    # A notification waits this long for the rest of its burst before its one CDC round.
    QBSYNC_CHANGE_COALESCE_SECONDS: float = Field(default=1.0, ge=0)
    QBSYNC_CONNECT_ATTEMPTS: int = Field(default=10, ge=1)
    # A run whose imported customers stop reaching the matcher fails after this long
    # without progress, so that the firm's next Sync Now starts afresh.
    QBSYNC_RUN_STALL_SECONDS: float = Field(default=120.0, gt=0)
    # The integration API (services/api): where it listens and how it checks tokens.
    QBSYNC_API_HOST: str = "127.0.0.1"
    QBSYNC_API_PORT: int = Field(default=8080, ge=0, le=65535)
    QBSYNC_API_JWT_SECRET: str | None = None
    QBSYNC_API_JWT_PUBLIC_KEY: str | None = None
    # A Create in Liscio unanswered this long may be asked again (qbsync/domain/accounts.py
    # LISCIO_CREATE_EXPIRY says why a day).
    QBSYNC_LISCIO_CREATE_EXPIRY_HOURS: float = Field(default=24.0, gt=0)

    @field_validator("QBSYNC_SECRET_KEY")
    @classmethod
    def _real_keys(cls, value: str | None) -> str | None:
        """Refused at start, in one line, when it holds anything but keys."""
        if value:
            secret_keys(value)
        return value

    def secret_key(self) -> str:
        if not self.QBSYNC_SECRET_KEY:
            raise ConfigurationError(
                "QBSYNC_SECRET_KEY", "is required to encrypt stored OAuth tokens"
            )
        return self.QBSYNC_SECRET_KEY

    def api_token_key(self) -> tuple[str, str]:
        """(algorithm, key) that API tokens are verified with: RS256 with the public key
        when one is set, otherwise HS256 with the shared secret."""
        if self.QBSYNC_API_JWT_PUBLIC_KEY:
            return "RS256", self.QBSYNC_API_JWT_PUBLIC_KEY
        if self.QBSYNC_API_JWT_SECRET:
            return "HS256", self.QBSYNC_API_JWT_SECRET
        raise ConfigurationError(
            "QBSYNC_API_JWT_SECRET",
            "(or QBSYNC_API_JWT_PUBLIC_KEY) is required to check API tokens",
        )

    def oauth_client(self) -> tuple[str, str]:
        if not self.QBO_CLIENT_ID:
            raise ConfigurationError("QBO_CLIENT_ID", "is required to talk to QuickBooks")
        if not self.QBO_CLIENT_SECRET:
            raise ConfigurationError("QBO_CLIENT_SECRET", "is required to talk to QuickBooks")
        return self.QBO_CLIENT_ID, self.QBO_CLIENT_SECRET


def load_settings() -> Settings:
    """Read the environment, turning pydantic's report into one line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = ".".join(str(part) for part in first["loc"]) or "configuration"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(variable, message) from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()

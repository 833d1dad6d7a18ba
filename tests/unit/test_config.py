from pathlib import Path

import pytest

from qbsync import config
from qbsync.config import load_settings
from qbsync.errors import ConfigurationError


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(config, "SERVICES_ENV_FILE", tmp_path / "no-services.env")
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "QBO_BASE_URL", "QBO_TOKEN_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.KAFKA_BOOTSTRAP_SERVERS == "localhost:9092"
    assert settings.QBO_BASE_URL == "https://quickbooks.api.intuit.com"
    assert settings.QBO_TOKEN_URL == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"


def test_a_checkout_follows_the_addresses_services_up_wrote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 17: with QBSYNC_KAFKA_PORT=29092 `make run` dialled 9092 and failed."""
    env_file = tmp_path / "services.env"
    env_file.write_text(
        "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29092\nDATABASE_URL=postgresql://q@127.0.0.1:5/x\n"
    )
    monkeypatch.setattr(config, "SERVICES_ENV_FILE", env_file)
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.KAFKA_BOOTSTRAP_SERVERS == "127.0.0.1:29092"
    assert settings.DATABASE_URL == "postgresql://q@127.0.0.1:5/x"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    assert load_settings().KAFKA_BOOTSTRAP_SERVERS == "kafka:9092"  # the environment wins


def test_an_invalid_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBO_MINOR_VERSION", "seventy-five")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert caught.value.variable == "QBO_MINOR_VERSION"
    assert str(caught.value).startswith("QBO_MINOR_VERSION:")


def test_the_secret_key_is_required_outside_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QBSYNC_SECRET_KEY", raising=False)
    monkeypatch.delenv("QBSYNC_DEMO", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        load_settings().secret_key()
    assert caught.value.variable == "QBSYNC_SECRET_KEY"

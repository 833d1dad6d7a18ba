"""Stored tokens: several keys (newest first), rotation, and real keys only (issue 17)."""

from __future__ import annotations

import base64
import os

import pytest

from qbsync.config import load_settings
from qbsync.crypto import TokenCipher, TokenDecryptionError, new_secret_key, secret_keys
from qbsync.errors import ConfigurationError


def test_a_new_key_is_32_random_bytes_in_url_safe_base64() -> None:
    first, second = new_secret_key(), new_secret_key()
    assert len(base64.urlsafe_b64decode(first)) == 32
    assert first != second


def test_tokens_encrypted_under_an_older_key_decrypt_and_new_ones_use_the_newest() -> None:
    old, new = new_secret_key(), new_secret_key()
    stored = TokenCipher(old).encrypt("refresh-token")

    rotated = TokenCipher(f"{new}, {old}")

    assert rotated.decrypt(stored) == "refresh-token"
    assert TokenCipher(new).decrypt(rotated.encrypt("fresh")) == "fresh"  # the newest
    rekeyed = rotated.rekey(stored)
    assert TokenCipher(new).decrypt(rekeyed) == "refresh-token"  # old key no longer needed
    with pytest.raises(TokenDecryptionError):
        TokenCipher(new).decrypt(stored)


@pytest.mark.parametrize(
    "value",
    [
        "test-secret",  # a passphrase
        base64.urlsafe_b64encode(os.urandom(16)).decode(),  # too short
        base64.urlsafe_b64encode(os.urandom(33)).decode(),  # too long
        "!" * 44,  # not base64
        " , ",
    ],
)
def test_anything_but_keys_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="qbsync secret-key prints one"):
        secret_keys(value)


def test_the_settings_refuse_a_passphrase_in_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QBSYNC_SECRET_KEY", f"{new_secret_key()},correct horse battery staple")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert caught.value.variable == "QBSYNC_SECRET_KEY"
    message = str(caught.value)
    assert "\n" not in message and "key 2 of 2 is not a key" in message
    assert "horse" not in message  # a secret is never echoed

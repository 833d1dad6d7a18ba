"""Encryption of stored OAuth tokens with QBSYNC_SECRET_KEY (Fernet: AES-128-CBC + HMAC).

QBSYNC_SECRET_KEY holds one or more keys separated by commas, newest first: tokens are
encrypted with the newest and decrypted with any of them (MultiFernet), so a key can be
rotated: put the new key first, run `qbsync connections rekey`, then drop the old one.
A key is 32 random bytes in url-safe base64 (`qbsync secret-key` prints a new one); a
passphrase is refused, since a weak passphrase would make a weak key.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from qbsync.errors import QbsyncError

KEY_BYTES = 32


class TokenDecryptionError(QbsyncError):
    """A stored token cannot be decrypted: QBSYNC_SECRET_KEY changed or the row is corrupt."""


def new_secret_key() -> str:
    """A fresh key for QBSYNC_SECRET_KEY: 32 random bytes, url-safe base64."""
    return Fernet.generate_key().decode()


def secret_keys(value: str) -> list[bytes]:
    """The keys of a QBSYNC_SECRET_KEY value, newest first. ValueError (one line, naming
    which key) for anything that is not a key."""
    parts = [part.strip() for part in value.split(",")]
    if not any(parts):
        raise ValueError("holds no key (qbsync secret-key prints one)")
    keys = []
    for position, part in enumerate(parts, start=1):
        try:
            raw = base64.urlsafe_b64decode(part.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES or len(part) != 44:
            which = f"key {position} of {len(parts)}" if len(parts) > 1 else "the value"
            raise ValueError(
                f"{which} is not a key: a key is {KEY_BYTES} random bytes in url-safe base64"
                " (qbsync secret-key prints one)"
            )
        keys.append(part.encode("ascii"))
    return keys


class TokenCipher:
    def __init__(self, secret_key: str) -> None:
        """`secret_key`: QBSYNC_SECRET_KEY's value (one key or several, newest first)."""
        self._fernet = MultiFernet([Fernet(key) for key in secret_keys(secret_key)])

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken:
            raise TokenDecryptionError(
                "stored token cannot be decrypted (was QBSYNC_SECRET_KEY changed?)"
            ) from None

    def rekey(self, ciphertext: bytes) -> bytes:
        """The same token encrypted with the newest key (its original timestamp kept)."""
        try:
            return self._fernet.rotate(ciphertext)
        except InvalidToken:
            raise TokenDecryptionError(
                "stored token cannot be decrypted with any key of QBSYNC_SECRET_KEY"
            ) from None

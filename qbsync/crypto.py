"""Encryption of stored OAuth tokens with QBSYNC_SECRET_KEY (Fernet: AES-128-CBC + HMAC)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from qbsync.errors import QbsyncError


class TokenDecryptionError(QbsyncError):
    """A stored token cannot be decrypted: QBSYNC_SECRET_KEY changed or the row is corrupt."""


class TokenCipher:
    def __init__(self, secret_key: str) -> None:
        # Any passphrase works: Fernet wants 32 url-safe base64 bytes, so derive them.
        digest = hashlib.sha256(secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken:
            raise TokenDecryptionError(
                "stored token cannot be decrypted (was QBSYNC_SECRET_KEY changed?)"
            ) from None

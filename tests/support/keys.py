"""The QBSYNC_SECRET_KEY of a test session: a real key, as production requires."""

from qbsync.crypto import new_secret_key

TEST_SECRET_KEY = new_secret_key()

"""The exception hierarchy of the library. Every error qbsync raises on purpose is a QbsyncError."""


class QbsyncError(Exception):
    """Base of every error raised on purpose by qbsync."""


class ConfigurationError(QbsyncError):
    """A setting is missing or invalid. The message names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class DependencyUnavailable(QbsyncError):
    """Kafka or PostgreSQL could not be reached after the bounded retries."""


class InvalidMessage(QbsyncError):
    """A message on an input topic does not parse or violates its schema."""

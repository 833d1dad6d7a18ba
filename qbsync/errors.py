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


class NotFound(QbsyncError):
    """An id names nothing (of this firm): the API answers 404."""

    def __init__(self, what: str, identifier: str) -> None:
        super().__init__(f"{what} {identifier!r} does not exist")
        self.what = what
        self.identifier = identifier


class Conflict(QbsyncError):
    """The request contradicts the current state (already linked, not linked, not
    connected): the API answers 409."""

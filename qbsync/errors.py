"""The exception hierarchy of the library. Every error qbsync raises on purpose is a
QbsyncError, and the three kinds of failure a piece of work can meet say how to recover:

    QbsyncError
    ├── Transient            wait and do the same work again; nothing about the work is wrong
    │   └── QuickBooksUnavailable (qbsync/quickbooks/errors.py: 429, 5xx, no answer,
    │                        once the client's own attempts are spent)
    ├── RecordRefused        one record was refused: recorded on its account as `attention`,
    │                        the rest of the work goes on
    │   └── QuickBooksRefusal (6240 duplicate name, other 4xx, object gone)
    ├── BadInput             the message itself is wrong: dead-lettered with the reason
    │   └── InvalidMessage
    ├── ConfigurationError   a setting is missing or invalid: exit code 2 at start
    └── DependencyUnavailable  Kafka or PostgreSQL unreachable at start: exit code 3

Other libraries' exceptions (asyncpg's, aiokafka's, the network's) are put into these
kinds in one place, `qbsync.retry.is_transient` and `is_bad_input`; the consumers and the
services' loops ask those, never the libraries' types.
"""


class QbsyncError(Exception):
    """Base of every error raised on purpose by qbsync."""


class Transient(QbsyncError):
    """A dependency is unavailable for now (PostgreSQL, Kafka, QuickBooks after the
    client's retries): the work that met it waits and is done again; its message is
    fine, so it is never dead-lettered for it."""


class RecordRefused(QbsyncError):
    """One record was refused (QuickBooks refused this customer): recorded on the account
    as `attention` for a person; the other records of the same work go on."""


class BadInput(QbsyncError):
    """The input itself is wrong: retrying cannot help; it goes to the dead-letter topic
    with the reason."""


class ConfigurationError(QbsyncError):
    """A setting is missing or invalid. The message names the environment variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class DependencyUnavailable(QbsyncError):
    """Kafka or PostgreSQL could not be reached after the bounded retries."""


class InvalidMessage(BadInput):
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


class ReconnectNeeded(Conflict):
    """The firm's QuickBooks connection waits for a person to reconnect it: the API
    answers 409 with the problem type that says so."""

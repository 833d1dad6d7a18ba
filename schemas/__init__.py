"""The messages on every topic of the contract, as pydantic v2 models.

`python -m schemas` regenerates the JSON Schema files beside this module; a test fails
when they drift from the models.
"""

from schemas.messages import (
    MESSAGE_MODELS,
    AccountCommand,
    AccountEvent,
    AccountFields,
    AccountState,
    Address,
    Contact,
    CustomerRecord,
    DeadLetter,
    LinkEvent,
    QboChangeNotice,
    SyncRequest,
)

__all__ = [
    "MESSAGE_MODELS",
    "AccountCommand",
    "AccountEvent",
    "AccountFields",
    "AccountState",
    "Address",
    "Contact",
    "CustomerRecord",
    "DeadLetter",
    "LinkEvent",
    "QboChangeNotice",
    "SyncRequest",
]

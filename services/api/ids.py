"""The one type of every id a request names in its path, query or body (`firm_id`,
`account_id`, `customer_id`, `run_id`), and of its search text: checked before any handler
runs, so that a value PostgreSQL's text cannot hold (a NUL character, a lone surrogate)
never reaches the database. Such an id names nothing (404, as `get_account` has always
answered it); one longer than any id is of the wrong format (422), as is such search text."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, StringConstraints
from pydantic_core import PydanticCustomError

# Liscio's and QuickBooks' ids are short; a page of them is not worth a longer key.
MAX_ID_LENGTH = 200


# The validation error of an id no record can have: the API answers it 404.
NAMES_NOTHING = "id_names_nothing"


def _unstorable(value: str) -> str | None:
    """Why PostgreSQL's text cannot hold `value`, or None when it can."""
    if "\x00" in value:
        return "a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text that is not valid Unicode"
    return None


def storable_id(value: str) -> str:
    if reason := _unstorable(value):
        raise PydanticCustomError(
            NAMES_NOTHING, "no record has an id with {reason}", {"reason": reason}
        )
    return value


def storable_text(value: str) -> str:
    if reason := _unstorable(value):
        raise ValueError(f"may not contain {reason}")
    return value


Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(storable_id),
]
SearchText = Annotated[str, StringConstraints(max_length=200), AfterValidator(storable_text)]

# The path parameters, with their documentation's examples.
FirmId = Annotated[Id, Path(description="The firm's Liscio id", examples=["f-123"])]
AccountId = Annotated[Id, Path(description="A Liscio account's id", examples=["a-456"])]
CustomerId = Annotated[Id, Path(description="A QuickBooks customer's Id", examples=["58"])]
RunId = Annotated[Id, Path(description="A Sync Now run's id")]

"""`message_json` writes exactly the model's JSON (`model_dump_json(exclude_unset=True)`) for
every message model, whether the values take orjson's shortcut or go through the model: the
shapes of the topics are contracts. Values are drawn from each model's own field types, with
odd text, other types, other orders, left-out and unknown fields."""

from __future__ import annotations

import random
import types
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from schemas import MESSAGE_MODELS, AccountCommand, CustomerRecord, LinkEvent
from schemas.encoding import message_json

# Odd text: quotes, a backslash, control characters, non-ASCII, a line separator, a slash,
# outer spaces, nothing at all.
TEXTS = ["plain", 'Ünïcode "quoted" \\ back\tslash\n\x01\x1f \u2028 / 😀', " padded ", "", "x"]
MOMENTS = [
    datetime(2026, 11, 25, 20, 37, 23, 301106, tzinfo=UTC),
    datetime(2026, 11, 25, 20, 37, 23, tzinfo=UTC),  # no microseconds
    datetime(2026, 11, 25, 20, 0, tzinfo=timezone(timedelta(hours=-6))),
    datetime(2026, 11, 25, 20, 0, tzinfo=timezone(timedelta(0))),
    datetime(2026, 11, 25, 20, 0),  # naive
]


def some_value(rng: random.Random, annotation: Any, depth: int = 0) -> Any:
    """A value for a field of this type: usually one the model keeps, sometimes one it
    converts (a number for text, text for a time) or refuses."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return some_value(rng, get_args(annotation)[0], depth)
    if origin in (Union, types.UnionType):
        return some_value(rng, rng.choice(get_args(annotation)), depth)
    if origin is list:
        item = get_args(annotation)[0]
        return [some_value(rng, item, depth + 1) for _ in range(rng.randrange(3))]
    if rng.random() < 0.05:
        return rng.choice([7, True, "2026-11-25T20:37:23Z", None, 1.5, {"a": 1}])
    if annotation is type(None):
        return None
    if origin is Literal:
        choices = get_args(annotation)
        return rng.choice([*choices, "other"] if rng.random() < 0.1 else choices)
    if annotation is str:
        return rng.choice(TEXTS)
    if annotation is bool:
        return rng.random() < 0.5
    if annotation is int:
        return rng.randrange(-5, 10**12)
    if annotation is datetime:
        return rng.choice(MOMENTS)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return some_values(rng, annotation, depth + 1)
    raise AssertionError(f"no values drawn for {annotation!r}")


def some_values(rng: random.Random, model: type[BaseModel], depth: int = 0) -> dict[str, Any]:
    values = {
        name: some_value(rng, info.annotation, depth)
        for name, info in model.model_fields.items()
        if info.is_required() or rng.random() < 0.7
    }
    if values and rng.random() < 0.05:
        values.pop(rng.choice(list(values)))  # possibly a required field
    if rng.random() < 0.05:
        values["unknown"] = "kept out by the model"
    if rng.random() < 0.05:
        values = dict(rng.sample(list(values.items()), len(values)))  # another order
    return values


def model_json(model: type[BaseModel], values: dict[str, Any]) -> bytes:
    return model.model_validate(values).model_dump_json(exclude_unset=True).encode()


@pytest.mark.parametrize("name", sorted(MESSAGE_MODELS))
def test_every_model_is_written_as_the_model_writes_it(name: str) -> None:
    model = MESSAGE_MODELS[name]
    rng = random.Random(f"message-encoding-{name}")
    refused = 0
    for _ in range(3000):
        values = some_values(rng, model)
        try:
            expected = model_json(model, values)
        except ValidationError:
            refused += 1
            with pytest.raises(ValidationError):
                message_json(model, values)
            continue
        assert message_json(model, values) == expected, values
    assert 0 < refused < 3000  # both outcomes were tried


ORDINARY: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (
        LinkEvent,
        {
            "event_id": "6f1c",
            "type": "link.created",
            "firm_id": "firm",
            "account_id": "acc",
            "realm_id": "9130",
            "customer_id": "42",
            "how": "auto",
            "reason": "Sync Now: names equal ignoring case",
            "at": MOMENTS[0],
        },
    ),
    (
        AccountCommand,
        {
            "command_id": "0123abcd",
            "type": "account.fill_fields",
            "firm_id": "firm",
            "account_id": "acc",
            "fields": {"address": {"line1": "1 Main St", "city": "Austin"}, "phone": "512"},
            "source": {"realm_id": "9130", "customer_id": "42"},
            "issued_at": MOMENTS[1],
        },
    ),
    (
        CustomerRecord,
        {
            "realm_id": "9130",
            "customer_id": "42",
            "display_name": "Ocean's Café",
            "active": True,
            "deleted": False,
            "merged_into": None,
            "parent_id": None,
            "sync_token": "3",
            "address": {
                "line1": "12 Ocean Dr.",
                "line2": None,
                "city": "Half Moon Bay",
                "state": "CA",
                "postal_code": "94213",
                "country": None,
            },
            "phone": "(415) 444-6538",
            "website": None,
            "email": None,
            "last_updated": MOMENTS[2],
            "firm_id": "firm",
            "run_id": None,
            "source": "import",
        },
    ),
]


@pytest.mark.parametrize("model, values", ORDINARY, ids=lambda x: getattr(x, "__name__", ""))
def test_ordinary_messages_take_the_shortcut(
    model: type[BaseModel], values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = model_json(model, values)

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("went through the model")

    monkeypatch.setattr(model, "model_validate", refuse)
    assert message_json(model, values) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"customer_id": " 42 "},  # the model strips an id
        {"customer_id": ""},  # and refuses an empty one
        {"display_name": 12},  # a number for text
        {"active": 1},
        {"source": "elsewhere"},
        {"last_updated": "2026-11-25T20:37:23Z"},  # text for a time
        {"address": {"line1": 5}},
        {"display_name": "broken \ud800"},  # a lone surrogate: orjson refuses it
    ],
)
def test_values_the_model_would_change_or_refuse_are_left_to_it(change: dict[str, Any]) -> None:
    values = {**ORDINARY[2][1], **change}
    try:
        expected = model_json(CustomerRecord, values)
    except (ValidationError, PydanticSerializationError) as refusal:
        with pytest.raises(type(refusal)):
            message_json(CustomerRecord, values)
        return
    assert message_json(CustomerRecord, values) == expected

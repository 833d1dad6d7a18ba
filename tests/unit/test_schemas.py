from pathlib import Path

import pytest
from pydantic import ValidationError

import schemas
from schemas.__main__ import render

SCHEMA_DIR = Path(schemas.__file__).parent


@pytest.mark.parametrize("name", sorted(schemas.MESSAGE_MODELS))
def test_json_schema_files_match_the_models(name: str) -> None:
    on_disk = (SCHEMA_DIR / f"{name}.schema.json").read_text()
    assert on_disk == render(name), f"{name}.schema.json drifted: run `make schemas`"


def valid_event() -> dict[str, object]:
    return {
        "event_id": "e-1",
        "type": "account.created",
        "occurred_at": "2026-11-25T16:00:00Z",
        "firm_id": "f-1",
        "account": {"id": "a-1", "name": "Acme", "status": "Client"},
    }


def test_the_contract_example_parses() -> None:
    event = schemas.AccountEvent.model_validate(valid_event())
    assert event.account.name == "Acme"
    assert event.account.contacts == []


@pytest.mark.parametrize(
    "change",
    [
        {"type": "account.deleted"},
        {"firm_id": ""},
        {"firm_id": "   "},
        {"event_id": ""},
        {"occurred_at": "yesterday"},
        {"account": {"id": "", "name": "Acme"}},
        {"account": {"id": "a-1"}},
    ],
)
def test_events_that_break_the_contract_are_rejected(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        schemas.AccountEvent.model_validate({**valid_event(), **change})

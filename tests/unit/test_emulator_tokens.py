"""The emulator's refresh-token rotation against a clock of the test's: Intuit's cadence
(the same token answered for a while), its 24-hour grace for the previous token, strict
rotation, and a grant revoked as a whole."""

from __future__ import annotations

import pytest

from qbsync.emulator.tokens import InvalidGrant, RotationSettings, TokenRegistry

DAY = 86_400.0


def test_the_previous_token_works_for_its_grace_and_answers_the_newest() -> None:
    tokens = TokenRegistry()  # rotation at every refresh, 24 h grace
    first = tokens.issue_refresh_token("realm", now=0.0)
    second = tokens.refresh(first, now=10.0).refresh_token
    assert second != first
    # A process that died before storing `second` spends `first` again: the newest comes back.
    assert tokens.refresh(first, now=10.0 + DAY - 1).refresh_token == second
    with pytest.raises(InvalidGrant):
        tokens.refresh(first, now=10.0 + DAY)
    third = tokens.refresh(second, now=10.0 + DAY).refresh_token
    assert third not in (first, second)
    assert tokens.newest_refresh_token(first) == third


def test_intuits_cadence_answers_the_same_refresh_token_until_it_rotates() -> None:
    tokens = TokenRegistry(rotation=RotationSettings(rotation_seconds=DAY))
    first = tokens.issue_refresh_token("realm", now=0.0)
    again = tokens.refresh(first, now=3600.0)
    assert again.refresh_token == first
    rotated = tokens.refresh(first, now=DAY + 1).refresh_token
    assert rotated != first
    assert tokens.refresh(first, now=DAY + 2).refresh_token == rotated  # within its grace


def test_strict_rotation_kills_the_previous_token_at_once() -> None:
    tokens = TokenRegistry(rotation=RotationSettings(previous_token_seconds=0))
    first = tokens.issue_refresh_token("realm", now=0.0)
    second = tokens.refresh(first, now=1.0).refresh_token
    with pytest.raises(InvalidGrant):
        tokens.refresh(first, now=1.0)
    assert tokens.refresh(second, now=2.0).refresh_token != second


def test_revoking_any_token_of_a_grant_ends_the_grant() -> None:
    tokens = TokenRegistry()
    first = tokens.issue_refresh_token("realm", now=0.0)
    second = tokens.refresh(first, now=1.0).refresh_token
    other = tokens.issue_refresh_token("realm", now=0.0)  # another connection's grant
    assert tokens.revoke(first)
    for dead in (first, second):
        with pytest.raises(InvalidGrant):
            tokens.refresh(dead, now=2.0)
    assert tokens.refresh(other, now=2.0).access_token


def test_settings_are_checked() -> None:
    settings = RotationSettings()
    assert settings.updated({"hold_answers": True}).hold_answers
    for bad in ({"rotation_seconds": -1}, {"hold_answers": "yes"}, {"other": 1}):
        with pytest.raises(ValueError):
            settings.updated(bad)

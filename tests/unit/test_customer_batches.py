"""`upsert_rounds`: a batch's records as rounds of at most one record per customer, in the
order they came, so that storing a batch is storing its records one after another."""

from __future__ import annotations

from qbsync.db.customers import upsert_rounds
from schemas import CustomerRecord


def record(customer_id: str, sync_token: str) -> CustomerRecord:
    return CustomerRecord(
        realm_id="r-1", customer_id=customer_id, display_name=customer_id, sync_token=sync_token
    )


def test_a_batch_without_repeats_is_one_round() -> None:
    batch = [record("1", "0"), record("2", "0"), record("3", "0")]
    assert upsert_rounds(batch) == [batch]


def test_repeats_of_a_customer_go_to_later_rounds_in_their_order() -> None:
    a0, b0, a1, a2, c0, b1 = (
        record("a", "0"),
        record("b", "0"),
        record("a", "1"),
        record("a", "2"),
        record("c", "0"),
        record("b", "1"),
    )
    assert upsert_rounds([a0, b0, a1, a2, c0, b1]) == [[a0, b0, c0], [a1, b1], [a2]]


def test_an_empty_batch_has_no_round() -> None:
    assert upsert_rounds([]) == []

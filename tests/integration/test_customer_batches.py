"""A run's import record and a later record of the same customer stored in one batch
(issue 11, defect 1): the run still counts the customer, and a stale record in the same
batch never rolls a newer one back. On the real PostgreSQL: the upsert's rules are SQL."""

from __future__ import annotations

import uuid

from qbsync.db.customers import count_seen_in_run, get_customer, store_customers
from qbsync.db.pool import Pool
from schemas import CustomerRecord


def record(realm_id: str, sync_token: str, phone: str, **extra: object) -> CustomerRecord:
    return CustomerRecord.model_validate(
        {
            "realm_id": realm_id,
            "customer_id": "58",
            "display_name": "Acme Tax LLC",
            "sync_token": sync_token,
            "phone": phone,
            **extra,
        }
    )


async def test_an_import_followed_by_our_write_in_one_batch_counts_for_the_run(
    pool: Pool,
) -> None:
    realm_id, run_id = f"r-{uuid.uuid4()}", str(uuid.uuid4())
    imported = record(realm_id, "3", "512-555-0100", run_id=run_id, source="import")
    written = record(realm_id, "4", "512-555-0199", source="write")

    await store_customers(pool, [imported, written])

    assert await count_seen_in_run(pool, realm_id, run_id) == 1
    stored = await get_customer(pool, realm_id, "58")
    assert stored is not None
    assert (stored.sync_token, stored.fields.phone) == ("4", "512-555-0199")


async def test_a_stale_record_after_a_newer_one_in_one_batch_changes_nothing(pool: Pool) -> None:
    realm_id, run_id = f"r-{uuid.uuid4()}", str(uuid.uuid4())
    written = record(realm_id, "4", "512-555-0199", source="write")
    stale_page = record(realm_id, "3", "512-555-0100", run_id=run_id, source="import")

    await store_customers(pool, [written, stale_page])

    stored = await get_customer(pool, realm_id, "58")
    assert stored is not None
    assert (stored.sync_token, stored.fields.phone) == ("4", "512-555-0199")
    assert await count_seen_in_run(pool, realm_id, run_id) == 1  # it was seen by the run

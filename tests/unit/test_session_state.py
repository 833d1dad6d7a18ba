"""The pool gives connections back without resetting their session (qbsync/db/pool.py:
a reset is a second round trip per use). That is safe only while no SQL of ours leaves
state on the session for the next user of the connection: these find any that would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    path
    for folder in ("qbsync", "services")
    for pattern in ("*.py", "*.sql")
    for path in sorted((ROOT / folder).rglob(pattern))
]

# Each kind of state that outlives a transaction, and what to write instead.
SESSION_STATE = {
    "a session advisory lock (use pg_advisory_xact_lock)": re.compile(
        r"pg_(try_)?advisory_lock(_shared)?\s*\(", re.IGNORECASE
    ),
    "LISTEN": re.compile(r"\bLISTEN\s+\w", re.IGNORECASE),
    "a session setting (use SET LOCAL)": re.compile(
        r"""["']\s*(SET|RESET)\s+(?!LOCAL\b)\w+\s*(=|TO\b)""", re.IGNORECASE
    ),
    "set_config(..., false) (use true: the transaction's)": re.compile(
        r"set_config\s*\([^)]*,\s*false\s*\)", re.IGNORECASE
    ),
    "a temporary table": re.compile(r"CREATE\s+(LOCAL\s+)?TEMP(ORARY)?\s+TABLE", re.IGNORECASE),
    "a cursor WITH HOLD": re.compile(r"\bWITH\s+HOLD\b", re.IGNORECASE),
    "a prepared statement in SQL": re.compile(r"""["']\s*PREPARE\s+\w""", re.IGNORECASE),
}


def session_state_in(text: str) -> list[str]:
    return [kind for kind, pattern in SESSION_STATE.items() if pattern.search(text)]


def test_our_sql_leaves_no_state_on_the_session() -> None:
    assert SOURCES, "no sources found"
    found = {
        str(path.relative_to(ROOT)): kinds
        for path in SOURCES
        if (kinds := session_state_in(path.read_text(encoding="utf-8")))
    }
    assert found == {}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_advisory_lock(hashtextextended($1, 0))",
        "SELECT pg_try_advisory_lock(42)",
        "LISTEN runs_changed",
        "await conn.execute('SET statement_timeout = 0')",
        'await conn.execute("SET search_path TO other")',
        "SELECT set_config('qbsync.actor', $1, false)",
        "CREATE TEMP TABLE staged (id text)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "await conn.execute('PREPARE q AS SELECT 1')",
    ],
)
def test_each_kind_of_session_state_is_found(sql: str) -> None:
    assert session_state_in(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        "SELECT pg_try_advisory_xact_lock($1)",
        "await conn.execute('SET LOCAL statement_timeout = 0')",
        "UPDATE accounts SET name = $2 WHERE account_id = $1",
        "ON CONFLICT (firm_id) DO UPDATE\n   SET realm_id = EXCLUDED.realm_id",
        "SELECT set_config('qbsync.actor', $1, true)",
    ],
)
def test_transaction_scoped_sql_is_not_session_state(sql: str) -> None:
    assert session_state_in(sql) == []

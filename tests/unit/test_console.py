"""The console's pieces that need no browser: the CSRF token, the words for refusals, and
the Sync Now steps as rendered (polling while the run is open, done as a word and a ✓).
The page itself is tested in Chromium (tests/integration/test_console.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from services.api.console.contract import ApiProblem
from services.api.console.session import csrf_ok, csrf_token, same_origin
from services.api.console.views import templates
from services.api.console.words import explain


def _request(origin: str | None) -> Request:
    headers = [(b"host", b"127.0.0.1:8080")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return Request(
        {"type": "http", "method": "POST", "scheme": "http", "path": "/", "headers": headers}
    )


def test_the_csrf_token_belongs_to_its_session_only() -> None:
    mine, theirs = csrf_token("session-a"), csrf_token("session-b")
    assert mine != theirs
    assert csrf_ok("session-a", mine)
    assert not csrf_ok("session-a", theirs)
    assert not csrf_ok("session-a", None)
    assert not csrf_ok("session-a", "")


def test_a_write_from_another_origin_is_not_same_origin() -> None:
    assert same_origin(_request("http://127.0.0.1:8080"))
    assert same_origin(_request(None))  # not a browser: the CSRF token decides
    assert not same_origin(_request("http://127.0.0.1:9999"))
    assert not same_origin(_request("https://evil.example"))


def test_refusals_are_said_in_a_firm_admins_words() -> None:
    linked = ApiProblem(409, "Conflict", "account a-1 is already linked to customer 7")
    assert "already linked" in explain(linked)
    down = ApiProblem(503, "Service Unavailable", "QuickBooks is unavailable: 500", "5")
    assert explain(down) == (
        "QuickBooks is unavailable right now. Nothing was changed; try again in 5 seconds."
    )
    assert explain(ApiProblem(403, "Forbidden", "x")) == "Only a firm admin can do this."
    not_connected = ApiProblem(409, "Conflict", "the firm is not connected to QuickBooks")
    assert "not connected" in explain(not_connected)


def _steps(run: dict[str, Any] | None, admin: bool = True) -> str:
    class Session:
        is_admin = admin

    return templates.get_template("_steps.html").render(run=run, session=Session())


def _run(status: str, **steps: str) -> dict[str, Any]:
    return {
        "run_id": "r-1",
        "status": status,
        "reason": None,
        "steps": {
            name: {"status": state, "counts": {"customers": 3} if name == "import" else {}}
            for name, state in steps.items()
        },
    }


def test_an_open_run_polls_and_shows_each_step_done_by_a_word_and_a_tick() -> None:
    html = _steps(_run("running", **{"import": "done", "match": "running", "push": "pending"}))
    assert 'hx-trigger="every 1s"' in html
    assert "/console/steps?run_id=r-1" in html
    assert 'data-step="import" data-status="done"' in html
    assert ">✓</span>" in html and ">Done</span>" in html and "3 customers" in html
    assert 'data-step="match" data-status="running"' in html and ">Running</span>" in html
    assert 'data-step="push" data-status="pending"' in html and ">Waiting</span>" in html


def test_a_finished_run_stops_polling() -> None:
    html = _steps(_run("done", **{"import": "done", "match": "done", "push": "done"}))
    assert "hx-trigger" not in html
    assert "Sync completed" in html
    assert html.count('data-status="done"') == 3


def test_no_run_yet_invites_an_admin_to_sync_and_tells_staff_only_the_fact() -> None:
    assert "Press Sync Now" in _steps(None)
    assert "No sync has run yet." in _steps(None, admin=False)
    assert "Press Sync Now" not in _steps(None, admin=False)


def _customer_row(liscio_create: dict[str, Any] | None) -> str:
    class Session:
        is_admin = True

    customer = {"id": "58", "display_name": "Cedar Holdings", "parent_id": None}
    item = {"account": None, "customer": customer, "link": None, "attention": None}
    records = {"items": [item | {"liscio_create": liscio_create}], "next_cursor": None}
    return templates.get_template("_record_rows.html").render(
        records=records, session=Session(), filter="all", q=""
    )


def test_a_customer_being_created_in_liscio_may_be_asked_again_only_once_retryable() -> None:
    assert "Not in Liscio" in _customer_row(None)
    assert ">Create in Liscio</button>" in _customer_row(None)
    waiting = _customer_row({"command_id": "c", "asked_at": None, "retryable": False})
    assert "Being created in Liscio" in waiting
    assert "create-in-liscio" not in waiting  # asking again would send the same command
    unanswered = _customer_row({"command_id": "c", "asked_at": None, "retryable": True})
    assert "Liscio has not answered" in unanswered
    assert ">Create in Liscio again</button>" in unanswered

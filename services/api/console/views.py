"""The integration page at `/`: server-rendered HTML, made live by htmx.

Every route only reads the session, asks the JSON API (services/api/console/contract.py)
and renders a template; errors the API answers are shown where they happened, in a firm
admin's words (words.py). Writes need the session's CSRF token (session.py).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from qbsync.cli.lag import format_catch_up
from qbsync.errors import DependencyUnavailable
from services.api.auth import Claims
from services.api.console.contract import ApiProblem, ContractClient
from services.api.console.lag import LagWatch
from services.api.console.session import (
    CSRF_HEADER,
    csrf_ok,
    csrf_token,
    end_session,
    keep_session,
    same_origin,
    session_token,
)
from services.api.console.words import explain
from services.api.deps import Deps
from services.api.problems import Problem

HERE = Path(__file__).parent
STATIC = HERE / "static"
PAGE_SIZE = 50
FILTERS = (
    ("all", "All"),
    ("linked", "Linked"),
    ("unlinked_accounts", "Unmatched in Liscio"),
    ("unlinked_customers", "Unmatched in QuickBooks"),
    ("ambiguous", "Ambiguous"),
    ("attention", "Needs attention"),
)
FILTER_NAMES = {name for name, _ in FILTERS}
OPEN_RUN = frozenset({"requested", "pending", "running"})
# A strict policy: the page loads nothing but its own files, runs no inline script or
# style, and cannot be framed. Any slip shows as a console error in the browser tests.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def dom_id(prefix: str, record_id: str) -> str:
    """An HTML id for a record (ids may hold characters an id or a selector can't)."""
    return f"{prefix}-{hashlib.sha1(record_id.encode()).hexdigest()[:12]}"


def new_key() -> str:
    """An Idempotency-Key for one rendered button: pressing it twice does the thing once."""
    return uuid.uuid4().hex


# The catch-up time reads as `qbsync lag` prints it.
templates.globals.update(dom_id=dom_id, new_key=new_key, FILTERS=FILTERS, catch_up=format_catch_up)

router = APIRouter(include_in_schema=False)
static_files = StaticFiles(directory=STATIC)


@dataclass(frozen=True)
class Session:
    token: str
    claims: Claims
    api: ContractClient

    @property
    def is_admin(self) -> bool:
        return self.claims.role == "admin"

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


class NoSession(Exception):
    """No valid session: the page says how to get one."""


def html(
    template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    body = templates.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS | (headers or {}))


def problem_html(problem: ApiProblem, request: Request) -> HTMLResponse:
    """A refusal, shown in the place the action was asked from. To htmx it is content to
    swap in, so it comes with 200 (a 4xx would be a failed load in the browser's console)
    and the API's status in `X-Problem-Status`; anyone else gets the status itself."""
    from_htmx = request.headers.get("hx-request") == "true"
    return html(
        "_problem.html",
        status=200 if from_htmx else problem.status,
        headers={"X-Problem-Status": str(problem.status)},
        message=explain(problem),
        problem=problem,
    )


def changed(synced: bool = False) -> dict[str, str]:
    """Tells the page that records changed: the counts refresh themselves, and after a
    Sync Now the records list too."""
    return {"HX-Trigger": "qbsync-changed, qbsync-synced" if synced else "qbsync-changed"}


def _session_of(request: Request, deps: Deps) -> Session:
    token = session_token(request)
    if token is None:
        raise NoSession
    try:
        claims = deps.tokens.claims(f"Bearer {token}")
    except Problem:
        raise NoSession from None
    # Named in the request's log line, as the API's own requests are.
    request.state.user = claims.user
    request.state.firm_id = claims.firm_id
    return Session(token, claims, ContractClient(request.app, token, claims.firm_id))


async def reader(request: Request, deps: Deps) -> Session:
    return _session_of(request, deps)


async def writer(request: Request, deps: Deps) -> Session:
    """A write needs the session, the page's CSRF token and (from a browser) our origin."""
    session = _session_of(request, deps)
    if not csrf_ok(session.token, request.headers.get(CSRF_HEADER)) or not same_origin(request):
        raise ApiProblem(403, "Forbidden", "the page's CSRF token is missing or wrong")
    return session


Reader = Annotated[Session, Depends(reader)]
Writer = Annotated[Session, Depends(writer)]


async def form_of(request: Request) -> dict[str, str]:
    """The fields htmx sent (application/x-www-form-urlencoded; last value of each)."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


# ------------------------------------------------------------------------------ the page


@router.get("/", response_class=HTMLResponse)
async def page(request: Request, deps: Deps, token: str | None = None) -> Response:
    if token is not None:
        return _sign_in(request, deps, token)
    try:
        session = _session_of(request, deps)
    except NoSession:
        return html("signed_out.html")
    try:
        integration = await session.api.integration()
    except ApiProblem as problem:
        if problem.status == 401:
            return html("signed_out.html")
        if problem.status != 404:
            raise
        integration = None  # a firm Liscio has not told us about yet: an empty page
    records = await _records(session, "all", "") if integration else None
    return html(
        "page.html",
        session=session,
        integration=integration,
        run=integration["last_run"] if integration else None,
        records=records,
        filter="all",
        q="",
    )


def _sign_in(request: Request, deps: Deps, token: str) -> Response:
    """`/?token=<jwt>` once: the token goes into the session cookie, and the browser is
    sent on to `/`, so the token leaves the address bar and the history. A page that
    refreshes to `/` rather than a 303: it is a navigation of our own site, so the
    SameSite=Strict cookie goes with it even when the link was followed from Liscio."""
    try:
        deps.tokens.claims(f"Bearer {token}")
    except Problem as problem:
        return html("signed_out.html", reason=problem.detail)
    response = html("signing_in.html")
    keep_session(response, request, token)
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request, session: Writer) -> Response:
    response = html("signed_out.html", headers={"HX-Redirect": "/"})
    end_session(response, request)
    return response


@router.get("/console/summary")
async def summary(session: Reader) -> Response:
    integration = await session.api.integration()
    return html("_summary.html", session=session, integration=integration)


# ------------------------------------------------------------------------ Sync Now, runs


@router.post("/console/syncs")
async def sync_now(session: Writer) -> Response:
    run = await session.api.start_sync()
    return html("_steps.html", session=session, run=run)


@router.get("/console/steps")
async def steps(session: Reader, run_id: str | None = None) -> Response:
    if run_id:
        run = await session.api.run(run_id)
    else:
        run = (await session.api.integration())["last_run"]
    finished = run is not None and run["status"] not in OPEN_RUN
    return html(
        "_steps.html", session=session, run=run, headers=changed(synced=True) if finished else None
    )


@router.post("/console/dry-run")
async def dry_run(session: Writer) -> Response:
    plan = await session.api.dry_run()
    names = await _names(session)
    return html("_dry_run.html", plan=plan, names=names)


async def _names(session: Session) -> dict[str, str]:
    """Names of the unlinked records (the ones a Sync Now would link), by id."""
    names: dict[str, str] = {}
    for filter_name in ("unlinked_accounts", "unlinked_customers"):
        page = await session.api.records(filter_name, "", 500)
        for item in page["items"]:
            if item["account"]:
                names["a:" + item["account"]["id"]] = item["account"]["name"]
            if item["customer"]:
                names["c:" + item["customer"]["id"]] = item["customer"]["display_name"]
    return names


# ------------------------------------------------------------------------------ records


async def _records(
    session: Session, filter_name: str, q: str, cursor: str | None = None
) -> dict[str, Any]:
    return await session.api.records(filter_name, q, PAGE_SIZE, cursor)


@router.get("/console/records")
async def records(
    session: Reader,
    filter: Annotated[str, Query()] = "all",
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: str | None = None,
) -> Response:
    filter_name = filter if filter in FILTER_NAMES else "all"
    found = await _records(session, filter_name, q.strip(), cursor)
    template = "_record_rows.html" if cursor else "_records.html"
    integration = None if cursor else await session.api.integration()
    return html(
        template,
        session=session,
        records=found,
        filter=filter_name,
        q=q,
        integration=integration,
    )


@router.get("/console/suggestions")
async def suggestions(
    session: Reader, account_id: str | None = None, customer_id: str | None = None
) -> Response:
    if account_id:
        items = await session.api.suggestions("account", account_id)
    elif customer_id:
        items = await session.api.suggestions("customer", customer_id)
    else:
        raise ApiProblem(422, "Unprocessable", "account_id or customer_id is required")
    return html(
        "_candidates.html",
        session=session,
        items=items,
        account_id=account_id,
        customer_id=None if account_id else customer_id,
        searched=None,
    )


@router.get("/console/search")
async def search_other_side(
    session: Reader,
    account_id: str | None = None,
    customer_id: str | None = None,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The magnifying glass: the unlinked records of the other side whose name holds q."""
    other = "unlinked_customers" if account_id else "unlinked_accounts"
    found = await _records(session, other, q.strip())
    items = [
        {"customer": i["customer"]} if account_id else {"account": i["account"]}
        for i in found["items"]
    ]
    return html(
        "_candidates.html",
        session=session,
        items=items,
        account_id=account_id,
        customer_id=customer_id,
        searched=q,
    )


@router.get("/console/search-form")
async def search_form(
    session: Reader, account_id: str | None = None, customer_id: str | None = None
) -> Response:
    return html(
        "_search_form.html", session=session, account_id=account_id, customer_id=customer_id
    )


# -------------------------------------------------------------------------- link, delink


@router.post("/console/links")
async def link(request: Request, session: Writer) -> Response:
    form = await form_of(request)
    created = await session.api.link(form["account_id"], form["customer_id"], form.get("key"))
    return await _pair(session, created["account_id"], form.get("name", ""), changed())


@router.post("/console/links/{account_id}/delete")
async def delink(account_id: str, request: Request, session: Writer) -> Response:
    form = await form_of(request)
    await session.api.delink(account_id)
    return html(
        "_done.html",
        message=f"Delinked {form.get('name') or account_id}. Both records "
        "stay; they are listed as unmatched again.",
        headers=changed(),
    )


@router.get("/console/pair")
async def pair(session: Reader, account_id: str, name: str = "") -> Response:
    return await _pair(session, account_id, name, None)


async def _pair(
    session: Session, account_id: str, name: str, headers: dict[str, str] | None
) -> Response:
    """A linked pair side by side, with its audit trail and the account's invoices."""
    found = await session.api.records("linked", name, PAGE_SIZE)
    item = next(
        (i for i in found["items"] if i["account"] and i["account"]["id"] == account_id), None
    )
    trail = await session.api.audit(account_id)
    return html(
        "_pair.html",
        session=session,
        item=item,
        account_id=account_id,
        trail=trail,
        headers=headers,
    )


# ------------------------------------------------------------------------------- create


@router.post("/console/accounts/{account_id}/create-in-quickbooks")
async def create_in_quickbooks(account_id: str, request: Request, session: Writer) -> Response:
    form = await form_of(request)
    created = await session.api.create_in_quickbooks(account_id, form.get("key"))
    return await _pair(session, created["link"]["account_id"], form.get("name", ""), changed())


@router.post("/console/customers/{customer_id}/create-in-liscio")
async def create_in_liscio(customer_id: str, request: Request, session: Writer) -> Response:
    form = await form_of(request)
    await session.api.create_in_liscio(customer_id, form.get("key"))
    name = form.get("name") or customer_id
    return html(
        "_done.html",
        message=f"Liscio was asked to create an account for {name}. "
        "It will be linked to this customer as soon as Liscio has created it.",
        headers=changed(),
    )


# ------------------------------------------------------------------------------ invoices


@router.get("/console/accounts/{account_id}/invoices")
async def invoices(
    account_id: str,
    session: Reader,
    q: Annotated[str, Query(max_length=200)] = "",
    status: str = "all",
) -> Response:
    status = status if status in ("all", "open", "paid") else "all"
    items = await session.api.invoices(account_id, q.strip(), status)
    return html("_invoice_rows.html", items=items, q=q)


@router.post("/console/accounts/{account_id}/invoices")
async def new_invoice(account_id: str, request: Request, session: Writer) -> Response:
    form = await form_of(request)
    try:
        amount = float(form.get("amount", ""))
    except ValueError:
        raise ApiProblem(422, "Unprocessable", "the amount must be a number") from None
    invoice: dict[str, Any] = {
        "contact_id": form.get("contact_id", ""),
        "lines": [{"amount": amount, "description": form.get("description", "")}],
        "due_date": form.get("due_date") or None,
    }
    created = await session.api.create_invoice(account_id, invoice, form.get("key"))
    items = await session.api.invoices(account_id, "", "all")
    return html("_invoice_rows.html", items=items, q="", created=created, account_id=account_id)


# ----------------------------------------------------------------------------------- lag


@router.get("/console/lag")
async def lag(request: Request, session: Reader, deps: Deps) -> Response:
    watch: LagWatch | None = getattr(request.app.state, "lag_watch", None)
    if watch is None:
        watch = LagWatch(deps.settings.KAFKA_BOOTSTRAP_SERVERS, deps.settings.QBSYNC_TOPIC_PREFIX)
        request.app.state.lag_watch = watch
    try:
        report = await watch.report()
    except DependencyUnavailable:
        return html("_lag.html", report=None, prefix=watch.prefix)
    return html("_lag.html", report=report, prefix=watch.prefix)

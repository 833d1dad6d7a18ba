"""The integration page in the browser (the console), served by the API process at `/`.

`install_console(app)` adds its routes, its static files (htmx vendored, the stylesheet)
and the handlers that turn a refusal of the API into words on the page."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.api.console.contract import ApiProblem
from services.api.console.views import NoSession, html, problem_html, router, static_files


async def _on_api_problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return problem_html(exc)


async def _on_no_session(_: Request, __: Exception) -> Response:
    return html(
        "_problem.html",
        status=401,
        message=("Your session has ended. Open the integration page from Liscio again."),
        problem=None,
    )


def install_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", static_files, name="static")
    app.add_exception_handler(ApiProblem, _on_api_problem)
    app.add_exception_handler(NoSession, _on_no_session)

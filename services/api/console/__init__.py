"""The integration page in the browser (the console), served by the API process at `/`.

`install_console(app)` adds its routes, its static files (htmx vendored, the stylesheet)
and the handlers that turn a refusal of the API into words on the page."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.api.console.contract import ApiProblem
from services.api.console.views import NoSession, problem_html, router, static_files


async def _on_api_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return problem_html(exc, request)


async def _on_no_session(request: Request, _: Exception) -> Response:
    return problem_html(ApiProblem(401, "Unauthorized", "no valid session"), request)


def install_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", static_files, name="static")
    app.add_exception_handler(ApiProblem, _on_api_problem)
    app.add_exception_handler(NoSession, _on_no_session)

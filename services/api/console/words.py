"""What the page says when the API refuses: in a firm admin's words, not HTTP's."""

from __future__ import annotations

from services.api.console.contract import ApiProblem


def explain(problem: ApiProblem) -> str:
    detail = problem.detail.lower()
    if problem.status == 401:
        return "Your session has ended. Open the integration page from Liscio again."
    if problem.status == 403:
        return "Only a firm admin can do this."
    if problem.status == 404:
        return "This record no longer exists. Refresh the list to see what is there now."
    if problem.status == 409:
        if "already linked" in detail:
            return (
                "This record is already linked to another one. Delink it first, or refresh "
                "the list to see its link."
            )
        if "not linked" in detail:
            return "These records are not linked any more."
        if "not connected" in detail:
            return "QuickBooks is not connected, so nothing can be synced yet."
        if "reconnect" in detail:
            return "The QuickBooks connection needs to be reconnected before this can be done."
        if "name" in detail or "duplicate" in detail:
            return (
                "QuickBooks already has a customer with this name. Link the account to that "
                "customer instead."
            )
        return "This can't be done in the records' current state. Refresh and try again."
    if problem.status == 413:
        return "That is too much text to send at once."
    if problem.status == 422:
        return "Some of what was entered is not valid. Please check it and try again."
    if problem.status == 503:
        wait = f" in {problem.retry_after} seconds" if problem.retry_after else " in a moment"
        if "quickbooks" in detail:
            return f"QuickBooks is unavailable right now. Nothing was changed; try again{wait}."
        return f"The service is busy right now. Nothing was changed; try again{wait}."
    return "Something went wrong. Nothing was changed; try again in a moment."

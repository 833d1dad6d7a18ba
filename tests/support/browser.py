"""A real headless Chromium for the console's end-to-end tests: Debian's `chromium`
(`make browser` installs it), driven by Playwright, which never downloads a browser.

`watched_page` opens a page that keeps every request it makes to 127.0.0.1 (any other
address is refused before it leaves the machine, and recorded) and records every console
error and uncaught exception, so a test can assert there were none."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Browser, Dialog, Page, Playwright, Route, async_playwright

from tests.support.stack import REPO

SCREENSHOTS = REPO / ".run" / "screenshots"
LOCAL_HOSTS = frozenset({"127.0.0.1"})
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def chromium_executable() -> str:
    found = os.environ.get("QBSYNC_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise AssertionError("chromium is not installed: `make browser` installs it")
    return found


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await _launch(playwright)
        try:
            yield browser
        finally:
            await browser.close()


async def _launch(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(
        executable_path=chromium_executable(),
        headless=True,
        # No call home of the browser's own (updates, safe browsing, field trials).
        args=["--disable-background-networking", "--disable-component-update", "--no-first-run"],
    )


@dataclass
class Watched:
    page: Page
    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not self.refused, f"requests that would have left 127.0.0.1: {self.refused}"
        assert not self.console_errors, f"console errors: {self.console_errors}"
        outside = [u for u in self.requests if urlsplit(u).hostname not in LOCAL_HOSTS]
        assert not outside, f"requests to other hosts: {outside}"
        assert self.requests, "the page made no request at all"

    async def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@asynccontextmanager
async def watched_page(
    browser: Browser, width: int = 1280, height: int = 900
) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    watched = Watched(page)

    async def only_local(route: Route) -> None:
        url = route.request.url
        if url.startswith("data:") or urlsplit(url).hostname in LOCAL_HOSTS:
            watched.requests.append(url)
            await route.continue_()
        else:
            watched.refused.append(url)
            await route.abort()

    await context.route("**/*", only_local)
    page.on(
        "console",
        lambda message: (
            watched.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: watched.console_errors.append(f"uncaught: {error}"))

    async def confirm(dialog: Dialog) -> None:  # hx-confirm's question: yes
        await dialog.accept()

    page.on("dialog", confirm)
    try:
        yield watched
    finally:
        await context.close()

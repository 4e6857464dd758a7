"""Headless Chromium (Debian's /usr/bin/chromium, never a downloaded one) for the UI tests."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.support.tools import how_to_get

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


@contextmanager
def chromium() -> Iterator[Any]:
    """A browser; fails (not skips) with a plain message when Chromium is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(how_to_get(["chromium"]), pytrace=False)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, base_url: str, width: int = 1280, height: int = 900,
             locale: str = "en-US") -> Any:
    context = browser.new_context(base_url=base_url, viewport={"width": width, "height": height},
                                  locale=locale, accept_downloads=True)
    context.set_default_timeout(15_000)
    return context.new_page()


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artefact (test-artifacts/screenshots/NAME.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9_.-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Any, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))

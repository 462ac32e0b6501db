"""Browser tests: Debian's Chromium driven by Playwright against the real app under uvicorn.

Fixtures for any browser test (the staff flow here; the patient sign-up flow elsewhere):
  chromium       path of the browser; installed with apt-get when missing and running as root,
                 otherwise skipped (a failure under CI=true, through tests.conftest.need)
  browser        one Playwright Chromium per test module
  live_server    the whole app on 127.0.0.1:<free port> (a `LiveServer`: .url, .runtime, .outbox),
                 fresh SQLite file and outbox folder, one per session
  page           a new browser context + page (1280x900) per test, closed afterwards
  screenshots    test-artifacts/screenshots/ (git-ignored)
  shoot          shoot(page, "name") saves screenshots/name.png of the whole page
To run another server with other settings, use `tests.browser.server.run_server(folder, **changes)`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.server import LiveServer, run_server
from tests.conftest import need

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser(chromium):
    """Per module, not per session: Playwright's sync API runs an event loop in this thread, and
    another test module that starts its own `sync_playwright()` (tests/web/test_browser.py) must
    not find one still running."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        need(False, "the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> LiveServer:
    with run_server(tmp_path_factory.mktemp("live")) as server:
        yield server


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def shoot(screenshots):
    """shoot(page, "name") saves test-artifacts/screenshots/name.png (the whole page) and returns its path."""

    def save(page, name: str, *, full_page: bool = True) -> Path:
        path = screenshots / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return save

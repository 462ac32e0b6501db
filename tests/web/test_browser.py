"""The public pages in a real browser (Chromium via Playwright) against a real uvicorn server.

This is where browser behaviour shows: e.g. under `Referrer-Policy: no-referrer` Chromium posts
our own forms with `Origin: null`, which a naive same-origin check would refuse.
"""

from __future__ import annotations

import threading
import time

import pytest

from drip.commands.serve import build_server
from drip.models import CampaignOptOut, Subscriber
from subscribers.tokens import TokenSigner
from tests.web.seed import seed

pytestmark = pytest.mark.browser


@pytest.fixture
def served(sqlite_runtime, chromium):
    server = build_server(sqlite_runtime, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(chromium):
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import LAUNCH_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        pg = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        yield pg
        browser.close()


def test_patient_unsubscribes_from_a_series_then_pauses_everything(sqlite_runtime, served, page):
    ids = seed(sqlite_runtime)
    token = TokenSigner(sqlite_runtime.settings.secret_key).unsubscribe_token(ids.subscriber_id, ids.campaign_id, 1)

    page.goto(f"{served}/u/{token}")
    # Readable on a phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.click("button:has-text('Unsubscribe from this series')")
    page.wait_for_selector("text=You're unsubscribed from this series")
    page.click("text=Manage your email preferences")
    page.click("button:has-text('Pause all emails')")
    page.wait_for_selector("button:has-text('Resume emails')")

    with sqlite_runtime.sessions() as s:
        assert s.get(CampaignOptOut, (ids.subscriber_id, ids.campaign_id)) is not None
        assert s.get(Subscriber, ids.subscriber_id).status == "paused"

"""The REST API's Swagger UI page in Chromium: it renders from drip's own copy of Swagger UI under
its strict CSP, with no request leaving the server's origin."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_from_our_own_files_under_the_csp(page, live_server, shoot):
    origin = urlsplit(live_server.url).netloc
    elsewhere: list[str] = []
    refused: list[str] = []
    page.on("request", lambda r: None if urlsplit(r.url).netloc == origin or r.url.startswith("data:")
            else elsewhere.append(r.url))
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)

    page.goto(f"{live_server.url}/api/v1/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "drip API" in page.locator(".swagger-ui .info .title").inner_text()
    page.locator(".opblock-tag", has_text="subscribers").first.wait_for()  # the document was loaded and drawn
    shoot(page, "api-docs")
    assert elsewhere == [] and refused == []

"""Emails worth opening: links in the article become links; the clinic's call to action on every email."""

from __future__ import annotations

import pytest
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from campaigns.render import Renderer, body_html
from drip.config import Clinic, load_settings
from drip.errors import ConfigurationError
from tests.campaigns.render_samples import content, recipient


@pytest.mark.parametrize("body, links", [
    ("See https://example.org/study for more.", ["https://example.org/study"]),
    ("Studies (https://example.org/a) and https://example.org/b.", ["https://example.org/a", "https://example.org/b"]),
    ("Read [the study](https://example.org/s) today.", ["https://example.org/s"]),
    ("Plain http://example.org/x?a=1&b=2, too.", ["http://example.org/x?a=1&b=2"]),
    ("Not javascript:alert(1) nor ftp://example.org/f nor www.example.org.", []),
])
def test_http_and_https_addresses_become_links(body, links):
    html = HTMLParser(str(body_html(body)))
    assert [a.attributes["href"] for a in html.css("a")] == links


def test_the_call_to_action_is_a_button_in_html_and_a_line_in_text():
    clinic = Clinic(booking_url="https://riverside-clinic.example/book", cta_label="Book a visit")
    out = Renderer(clinic, base_url="https://clinic.test").render(content(), recipient())
    buttons = [a for a in HTMLParser(out.html).css("a") if a.text(strip=True) == "Book a visit"]
    assert [a.attributes["href"] for a in buttons] == ["https://riverside-clinic.example/book"]
    assert "Book a visit: https://riverside-clinic.example/book" in out.text


def test_no_booking_url_no_button_and_a_bad_one_is_refused_at_start_up(monkeypatch):
    out = Renderer(Clinic(), base_url="https://clinic.test").render(content(), recipient())
    assert "Book a visit" not in out.html and "Book a visit" not in out.text
    hidden = Renderer(Clinic(booking_url="javascript:alert(1)"), base_url="https://clinic.test")
    assert "javascript:" not in hidden.render(content(), recipient()).html
    with pytest.raises(ConfigurationError, match="DRIP_CLINIC_BOOKING_URL"):
        load_settings({"DRIP_CLINIC_BOOKING_URL": "javascript:alert(1)", "DRIP_SECRET_KEY": "k"})

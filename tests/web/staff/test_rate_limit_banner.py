"""Staff pages say when a provider rate limit holds emails back, and until when."""

from __future__ import annotations

from datetime import timedelta

from delivery.ratelimit import RateLimiter
from delivery.ratespec import parse_limits
from tests.web.seed import T0
from tests.web.staff.conftest import both_databases


def banner(html: str) -> str:
    start = html.find('class="flash flash-info sending-limited"')
    return " ".join(html[start:html.find("</div>", start)].split()) if start >= 0 else ""


@both_databases
def test_limited_banner_names_the_next_send_time(runtime, staff, clock):
    at = T0 + timedelta(minutes=5, seconds=20)  # 09:05:20 in the clinic's zone (New York)
    clock.now = at
    assert banner(staff.get("/staff/campaigns").text) == ""
    limiter = RateLimiter(runtime.sessions, "smtp", parse_limits("3/minute"))
    assert limiter.reserve(at, 2).granted == 2
    assert banner(staff.get("/staff/campaigns").text) == "", "room left: not limited"
    limiter.reserve(at, 5)
    text = banner(staff.get("/staff/campaigns").text)
    assert "Sending is limited: next sends at 09:06:00 (smtp: 3/minute used up)" in text, text
    clock.now = at + timedelta(minutes=1)  # the next window: nothing to say
    assert banner(staff.get("/staff/campaigns").text) == ""


def test_login_page_does_not_say_it(anon):
    assert banner(anon.get("/staff/login").text) == ""

"""Every staff page says plainly when sending is stopped: no worker ever, or none since a time."""

from __future__ import annotations

from datetime import timedelta

from delivery.heartbeat import Heartbeat
from drip.models import Delivery
from tests.factories import make_subscriber
from tests.web.seed import T0
from tests.web.staff.conftest import both_databases


def banner(html: str) -> str:
    start = html.find('class="flash flash-error sending-stopped"')
    return " ".join(html[start:html.find("</div>", start)].split()) if start >= 0 else ""


@both_databases
def test_no_worker_ever_then_live_then_stopped_since(runtime, staff, clock):
    for path in ("/staff/campaigns", "/staff/subscribers", "/staff/newsletters"):
        assert "Sending is stopped: no worker has ever run." in banner(staff.get(path).text), path

    with runtime.sessions.begin() as s:  # one email due now, waiting for a worker
        sub = make_subscriber(s, "ann@example.org")
        s.add(Delivery(subscriber_id=sub.id, due_at=T0 - timedelta(minutes=5), status="scheduled"))
    beat_at = T0 + timedelta(minutes=12)  # 09:12 in the clinic's zone (New York)
    clock.now = beat_at
    Heartbeat(runtime.sessions, "box:1", clock=lambda: beat_at).start()
    assert banner(staff.get("/staff/campaigns").text) == ""  # a live worker: nothing to say

    clock.now = beat_at + timedelta(seconds=runtime.settings.worker_stale_seconds + 60)
    text = banner(staff.get("/staff/campaigns").text)
    assert "Sending is stopped: no worker has run since 09:12. 1 email is due and waiting." in text, text

    Heartbeat(runtime.sessions, "box:1", clock=lambda: beat_at - timedelta(days=1)).start()  # on another day
    assert "no worker has run since Mon 30 Nov 2026, 09:12." in banner(staff.get("/staff/campaigns").text)


def test_login_page_does_not_say_it(anon):
    assert banner(anon.get("/staff/login").text) == ""

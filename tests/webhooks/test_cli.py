"""`drip webhooks ...`: add (private refused: one line, exit 2), list, rotate, disable, log, replay."""

from __future__ import annotations

import re
import sys

import pytest
from sqlalchemy import select

from drip.cli import main
from drip.models import WebhookEndpoint


def run(monkeypatch, capsys, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.fixture
def cli_env(sqlite_runtime, monkeypatch, tmp_path):
    s = sqlite_runtime.settings
    monkeypatch.setenv("DRIP_DATABASE_URL", s.db_url)
    monkeypatch.setenv("DRIP_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("DRIP_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setattr(sys, "argv", ["drip"])
    return sqlite_runtime


def test_cli_webhooks(cli_env, monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, ["webhooks", "add", "http://127.0.0.1:9/hook", "--events", "sent"])
    assert code == 2 and "private or loopback" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, out, err = run(monkeypatch, capsys, ["webhooks", "add", "http://127.0.0.1:9/hook", "--events", "nope"])
    assert code == 2 and "unknown event type 'nope'" in err
    monkeypatch.setenv("DRIP_WEBHOOK_ALLOW_PRIVATE", "true")
    code, out, err = run(monkeypatch, capsys, ["webhooks", "add", "http://127.0.0.1:9/hook", "--events",
                                               "sent,enrollment.*"])
    assert code == 0, err
    secret = re.search(r"secret: (whsec_\S+)", out).group(1)
    with cli_env.sessions() as s:
        ep = s.scalar(select(WebhookEndpoint))
        assert (ep.secret, ep.events) == (secret, ["email.sent", "enrollment.started", "enrollment.completed",
                                                   "enrollment.exited"])
    code, out, _ = run(monkeypatch, capsys, ["webhooks", "rotate", str(ep.id)])
    assert code == 0 and "the old secret also signs until" in out
    code, out, _ = run(monkeypatch, capsys, ["webhooks", "disable", str(ep.id)])
    assert code == 0
    code, out, _ = run(monkeypatch, capsys, ["webhooks", "list"])
    assert code == 0 and "disabled" in out and "http://127.0.0.1:9/hook" in out
    with cli_env.sessions() as s:
        ep = s.get(WebhookEndpoint, ep.id)
        assert ep.previous_secret == secret and ep.secret != secret and ep.active is False
    code, _, err = run(monkeypatch, capsys, ["webhooks", "replay", "999"])
    assert code == 2 and "no webhook delivery 999" in err


def test_run_once_delivers_due_webhook_events_when_no_email_is_due(cli_env, monkeypatch, capsys, receiver):
    """`drip run --once` from cron: its fast path (nothing due: exit before the ORM) also asks about
    webhook deliveries, so an event waits for the next cron run, not for an email to be due."""
    from datetime import datetime, timezone

    from drip.models import WebhookDelivery
    from subscribers.service import upsert_subscriber
    from webhooks.endpoints import add_endpoint

    monkeypatch.setenv("DRIP_WEBHOOK_ALLOW_PRIVATE", "true")
    now = datetime.now(timezone.utc)
    with cli_env.sessions.begin() as s:
        ep = add_endpoint(s, receiver.url, (), now, allow_private=True)
        receiver.secrets.append(ep.secret)
        sub, _ = upsert_subscriber(s, "new@example.org", now=now)
        sub_id = sub.id
    code, out, err = run(monkeypatch, capsys, ["run", "--once"])
    assert code == 0, err
    assert "webhooks: 1 delivered, 0 to retry, 0 failed" in out
    got = receiver.ok()
    assert receiver.bad == 0 and len(got) == len(receiver.received) == 1
    assert got[0].json["type"] == "subscriber.subscribed" and got[0].json["data"]["subscriber_id"] == sub_id
    with cli_env.sessions() as s:
        assert [r for (r,) in s.execute(select(WebhookDelivery.status))] == ["delivered"]
    code, out, err = run(monkeypatch, capsys, ["run", "--once"])  # nothing left: the fast path, nothing posted
    assert code == 0 and "webhooks:" not in out and len(receiver.received) == 1


def test_the_due_check_asks_about_webhook_deliveries(runtime):
    from datetime import datetime, timedelta, timezone

    from delivery.due_check import anything_due
    from drip.models import WebhookDelivery
    from subscribers.service import upsert_subscriber
    from webhooks.endpoints import add_endpoint, set_active

    now = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)
    url = runtime.settings.db_url
    with runtime.sessions.begin() as s:
        ep = add_endpoint(s, "http://127.0.0.1:9/", (), now, allow_private=True, check_dns=False)
        upsert_subscriber(s, "new@example.org", now=now + timedelta(minutes=1))  # its event due then
        ep_id = ep.id
    assert anything_due(url, now) is False
    assert anything_due(url, now + timedelta(minutes=1)) is True
    with runtime.sessions.begin() as s:
        set_active(s, s.get(WebhookEndpoint, ep_id), False)
    assert anything_due(url, now + timedelta(minutes=1)) is False  # a disabled endpoint's events wait
    with runtime.sessions.begin() as s:
        set_active(s, s.get(WebhookEndpoint, ep_id), True)
        row = s.scalar(select(WebhookDelivery))
        row.status, row.lease_until = "sending", now + timedelta(minutes=2)
    assert anything_due(url, now + timedelta(minutes=1)) is False  # being posted, lease running
    assert anything_due(url, now + timedelta(minutes=3)) is True  # its worker died: due again

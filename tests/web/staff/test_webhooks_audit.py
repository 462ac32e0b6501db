"""Webhook endpoints are where patients' events go: adding, rotating, disabling, enabling and
replaying are audited (#14 item 3), from the staff page and from `drip webhooks`, with the URL
cut to scheme, host and path (a receiver's token in the query stays out of the log) and never a
secret. A refused change writes no row."""

from __future__ import annotations

import json

from sqlalchemy import select

from drip.audit import url_for_log
from drip.models import AuditEntry, WebhookDelivery, WebhookEndpoint
from subscribers.service import upsert_subscriber
from tests.web.seed import T0
from tests.web.staff.conftest import STAFF_EMAIL, login, post_form
from tests.web.staff.test_staff_cli import cli_env, run_main  # noqa: F401  (fixture)

URL = "http://127.0.0.1:9/hooks/drip?token=receiver-credential#x"  # a user:password in it is refused


def webhook_rows(runtime):
    with runtime.sessions() as s:
        return [(r.action, r.actor, r.target, r.before, r.after)
                for r in s.scalars(select(AuditEntry).where(AuditEntry.action.like("webhook.%"))
                                   .order_by(AuditEntry.id))]


def secrets(runtime) -> list[str]:
    with runtime.sessions() as s:
        ep = s.scalar(select(WebhookEndpoint))
        return [ep.secret, ep.previous_secret or ""]


def test_url_for_log_keeps_scheme_host_and_path_only():
    assert url_for_log(URL) == "http://127.0.0.1:9/hooks/drip"
    assert url_for_log("https://user:pw@h.example:8443/p?q=1") == "https://h.example:8443/p"
    assert url_for_log("https://booking.example/h") == "https://booking.example/h"
    assert url_for_log("not a url") == "" and url_for_log("http://[::1") == ""


def test_the_staff_pages_webhook_changes_are_audited(runtime, make_client, staff_user):
    staff = make_client(webhook_allow_private=True)
    assert login(staff).status_code == 303
    r = post_form(staff, "/staff/webhooks", "/staff/webhooks/add", data={"url": "ftp://nowhere"})
    assert r.status_code == 400 and webhook_rows(runtime) == []  # refused: no row
    r = post_form(staff, "/staff/webhooks", "/staff/webhooks/add",
                  data={"url": URL, "events": ["subscriber.subscribed"], "description": "booking"})
    assert r.status_code == 200
    with runtime.sessions() as s:
        eid = s.scalar(select(WebhookEndpoint.id))
    assert post_form(staff, "/staff/webhooks", f"/staff/webhooks/{eid}/rotate").status_code == 200
    assert post_form(staff, "/staff/webhooks", f"/staff/webhooks/{eid}/active", data={"active": "0"}).status_code == 303
    assert post_form(staff, "/staff/webhooks", f"/staff/webhooks/{eid}/active", data={"active": "0"}).status_code == 303
    assert post_form(staff, "/staff/webhooks", f"/staff/webhooks/{eid}/active", data={"active": "1"}).status_code == 303
    with runtime.sessions.begin() as s:
        upsert_subscriber(s, "ann@example.org", now=T0)  # one event, one delivery to the endpoint
    with runtime.sessions() as s:
        did = s.scalar(select(WebhookDelivery.id))
    assert post_form(staff, "/staff/webhooks", f"/staff/webhooks/deliveries/{did}/replay").status_code == 303

    rows = webhook_rows(runtime)
    assert [(a, who, target) for a, who, target, _, _ in rows] == [
        ("webhook.add", STAFF_EMAIL, f"webhook {eid}"), ("webhook.rotate", STAFF_EMAIL, f"webhook {eid}"),
        ("webhook.disable", STAFF_EMAIL, f"webhook {eid}"),  # disabling a disabled one changes nothing: no row
        ("webhook.enable", STAFF_EMAIL, f"webhook {eid}"), ("webhook.replay", STAFF_EMAIL, f"webhook delivery {did}")]
    assert rows[0][4] == {"url": "http://127.0.0.1:9/hooks/drip", "events": ["subscriber.subscribed"],
                          "description": "booking"}
    assert (rows[2][3], rows[2][4]) == ({"active": True}, {"active": False})
    assert rows[4][4] == {"endpoint": eid}
    logged = json.dumps(rows, default=str)
    assert "receiver-credential" not in logged
    assert not any(secret and secret in logged for secret in secrets(runtime))


def test_drip_webhooks_changes_are_audited_as_cli(cli_env, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("DRIP_WEBHOOK_ALLOW_PRIVATE", "true")
    code, _, err = run_main(monkeypatch, capsys, ["webhooks", "add", URL, "--events", "nope"])
    assert code == 2 and webhook_rows(cli_env) == []
    code, _, err = run_main(monkeypatch, capsys, ["webhooks", "add", URL, "--events", "subscribed"])
    assert code == 0, err
    with cli_env.sessions() as s:
        eid = s.scalar(select(WebhookEndpoint.id))
    for args in (["rotate", str(eid)], ["disable", str(eid)], ["enable", str(eid)]):
        assert run_main(monkeypatch, capsys, ["webhooks", *args])[0] == 0, args
    with cli_env.sessions.begin() as s:
        upsert_subscriber(s, "ann@example.org", now=T0)
    with cli_env.sessions() as s:
        did = s.scalar(select(WebhookDelivery.id))
    assert run_main(monkeypatch, capsys, ["webhooks", "replay", str(did)])[0] == 0
    code, _, err = run_main(monkeypatch, capsys, ["webhooks", "replay", "999"])
    assert code == 2
    rows = webhook_rows(cli_env)
    assert [(a, who, target) for a, who, target, _, _ in rows] == [  # the refused replay wrote nothing
        ("webhook.add", "cli", f"webhook {eid}"), ("webhook.rotate", "cli", f"webhook {eid}"),
        ("webhook.disable", "cli", f"webhook {eid}"), ("webhook.enable", "cli", f"webhook {eid}"),
        ("webhook.replay", "cli", f"webhook delivery {did}")]
    assert rows[0][4] == {"url": "http://127.0.0.1:9/hooks/drip", "events": ["subscriber.subscribed"],
                          "description": ""}
    logged = json.dumps(rows, default=str)
    assert "receiver-credential" not in logged
    assert not any(secret and secret in logged for secret in secrets(cli_env))

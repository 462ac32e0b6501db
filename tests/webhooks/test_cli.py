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

"""`drip staff add --role`, `drip staff role`, `drip api-token create --scope`, `drip audit`."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from drip.models import ApiToken, StaffUser
from tests.web.staff.test_staff_cli import cli_env, run_main  # noqa: F401  (fixture)


def roles(runtime):
    with runtime.sessions() as s:
        return {u.email: u.role for u in s.scalars(select(StaffUser))}


def test_roles_from_the_command_line(cli_env, monkeypatch, capsys):  # noqa: F811
    code, out, _ = run_main(monkeypatch, capsys, ["staff", "add", "first@clinic.example.org", "--password-stdin"],
                            "a long password 1\n")
    assert code == 0 and "(owner)" in out  # the first account manages the rest
    code, out, _ = run_main(monkeypatch, capsys, ["staff", "add", "ed@clinic.example.org", "--password-stdin",
                                                  "--role", "Editor"], "a long password 2\n")
    assert code == 0 and roles(cli_env)["ed@clinic.example.org"] == "editor"
    code, _, err = run_main(monkeypatch, capsys, ["staff", "add", "x@clinic.example.org", "--password-stdin",
                                                  "--role", "boss"], "a long password 3\n")
    assert code == 2 and "unknown role 'boss'" in err and "x@clinic.example.org" not in roles(cli_env)
    code, out, _ = run_main(monkeypatch, capsys, ["staff", "role", "ed@clinic.example.org", "approver"])
    assert code == 0 and "now approver (was editor)" in out
    code, _, err = run_main(monkeypatch, capsys, ["staff", "role", "first@clinic.example.org", "viewer"])
    assert code == 2 and "at least one owner" in err
    code, out, _ = run_main(monkeypatch, capsys, ["audit", "--action", "staff.", "--csv"])
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["action"] for r in rows] == ["staff.role", "staff.add", "staff.add"]
    assert {r["actor"] for r in rows} == {"cli"}


def test_scoped_tokens_from_the_command_line(cli_env, monkeypatch, capsys):  # noqa: F811
    code, out, err = run_main(monkeypatch, capsys, ["api-token", "create", "booking", "--scope", "read",
                                                    "--scope", "events:write"])
    assert code == 0 and out.startswith("drip_") and "events:write,read" in err
    code, _, err = run_main(monkeypatch, capsys, ["api-token", "create", "bad", "--scope", "everything"])
    assert code == 2 and "unknown scope 'everything'" in err
    code, out, _ = run_main(monkeypatch, capsys, ["api-token", "create", "full"])
    with cli_env.sessions() as s:
        assert dict(s.execute(select(ApiToken.name, ApiToken.scopes)).all()) == {"booking": "events:write,read",
                                                                                   "full": "all"}
    code, out, _ = run_main(monkeypatch, capsys, ["audit", "--action", "token.create"])
    assert code == 0 and "booking" in out and "full" in out
    code, _, err = run_main(monkeypatch, capsys, ["audit", "--since", "last week"])
    assert code == 2 and "--since" in err


def test_campaign_commands_are_audited_as_cli(cli_env, monkeypatch, capsys):  # noqa: F811
    from drip.models import AuditEntry
    from tests.factories import make_campaign

    with cli_env.sessions.begin() as s:
        make_campaign(s, "onboarding", n_items=1)
    code, _, err = run_main(monkeypatch, capsys, ["campaigns", "pause", "onboarding"])
    assert code == 0, err
    with cli_env.sessions() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "campaign.pause"))
    assert (entry.actor_kind, entry.before, entry.after) == ("cli", {"status": "published"}, {"status": "paused"})

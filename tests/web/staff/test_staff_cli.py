"""`drip staff add` / `drip staff list`: hidden, confirmed password prompt or --password-stdin."""

from __future__ import annotations

import io
import sys

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from drip.cli import app, main
from drip.models import StaffUser
from web.staff import auth


@pytest.fixture
def cli_env(sqlite_runtime, monkeypatch, tmp_path):
    s = sqlite_runtime.settings
    monkeypatch.setenv("DRIP_DATABASE_URL", s.db_url)
    monkeypatch.setenv("DRIP_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("DRIP_CONFIG", str(tmp_path / "absent.toml"))
    return sqlite_runtime


def users(runtime):
    with runtime.sessions() as s:
        return {u.email: u.password_hash for u in s.scalars(select(StaffUser))}


def run_main(monkeypatch, capsys, args, stdin=""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_add_with_a_hidden_confirmed_prompt(cli_env):
    result = CliRunner().invoke(app, ["staff", "add", "Ann@Clinic.example.org"],
                                input="first try password\nmistyped password\nright password 1\nright password 1\n")
    assert result.exit_code == 0, result.output
    assert "right password 1" not in result.output  # hidden
    assert "added staff user ann@clinic.example.org" in result.output
    with cli_env.sessions() as s:
        assert auth.authenticate(s, "ann@clinic.example.org", "right password 1") is not None


def test_add_with_password_stdin(cli_env, monkeypatch, capsys):
    code, out, _ = run_main(monkeypatch, capsys, ["staff", "add", "bob@clinic.example.org", "--password-stdin"],
                            "from a script 123\r\n")
    assert code == 0 and "added staff user bob@clinic.example.org" in out
    with cli_env.sessions() as s:
        assert auth.authenticate(s, "bob@clinic.example.org", "from a script 123") is not None
    code, _, err = run_main(monkeypatch, capsys, ["staff", "add", "bob@clinic.example.org", "--password-stdin"],
                            "another password 1\n")
    assert code == 2 and err.strip() == (
        "drip: error: email: staff user bob@clinic.example.org already exists (use --update to set a new password)")
    before = users(cli_env)["bob@clinic.example.org"]
    code, out, _ = run_main(monkeypatch, capsys, ["staff", "add", "bob@clinic.example.org", "--password-stdin",
                                                  "--update"], "another password 1\n")
    assert code == 0 and "new password for staff user bob@clinic.example.org" in out
    assert users(cli_env)["bob@clinic.example.org"] != before


@pytest.mark.parametrize("args, stdin, message", [
    (["staff", "add", "carol@clinic.example.org", "--password-stdin"], "short\n",
     "drip: error: password: password must be at least 10 characters"),
    (["staff", "add", "carol@clinic.example.org", "--password-stdin"], "",
     "drip: error: --password-stdin: no password on standard input"),
    (["staff", "add", "not an address", "--password-stdin"], "long enough password\n", "drip: error: email: "),
])
def test_bad_input_is_one_line_and_writes_nothing(cli_env, monkeypatch, capsys, args, stdin, message):
    code, _, err = run_main(monkeypatch, capsys, args, stdin)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1
    assert users(cli_env) == {}


def test_list(cli_env, monkeypatch, capsys):
    run_main(monkeypatch, capsys, ["staff", "add", "dee@clinic.example.org", "--password-stdin"], "long enough password\n")
    result = CliRunner().invoke(app, ["staff", "list"])
    assert result.exit_code == 0 and "dee@clinic.example.org" in result.output

"""`drip subscribers ...` end to end: drip.cli.main(argv) on a temp SQLite file, one real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from drip.cli import main
from drip.models import Subscriber


@pytest.fixture
def db(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cli.sqlite3"
    monkeypatch.chdir(tmp_path)  # no stray ./drip.toml
    monkeypatch.setenv("DRIP_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("DRIP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIP_CONFIG", str(tmp_path / "absent.toml"))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def subscribers_in(path: Path) -> int:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Subscriber))
    finally:
        engine.dispose()


def csv_file(tmp_path: Path, bad_address: bool) -> Path:
    rows = ["email,name,tz,tags", "ann@example.org,Ann,Europe/Paris,vip", "bob@example.org,Bob,,"]
    if bad_address:
        rows.append("carl-at-example.org,Carl,,")
    rows.append("dee@example.org,Dee,Nowhere/Land,")
    path = tmp_path / "patients.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_add_show_tag_list(db, capsys):
    code, out, _ = run(capsys, "subscribers", "add", "Ann@Example.org", "--name", "Ann [bold]Lee[/bold]", "--tz",
                       "europe/paris", "--tag", "vip")
    assert code == 0 and "added Ann@example.org" in out
    code, out, _ = run(capsys, "subscribers", "add", "ann@example.org", "--name", "Ann Lee")
    assert code == 0 and "updated" in out
    code, out, _ = run(capsys, "subscribers", "tag", "ANN@example.org", "spring", "vip")
    assert code == 0 and "spring, vip" in out
    code, out, _ = run(capsys, "subscribers", "show", "ann@EXAMPLE.org")
    assert code == 0
    assert "Europe/Paris" in out and "spring, vip" in out and "cli at" in out
    code, out, _ = run(capsys, "subscribers", "list", "--tag", "vip")
    assert code == 0 and "Ann@example.org" in out and "1-1 of 1" in out
    assert subscribers_in(db) == 1


def test_list_pages_on_with_after(db, capsys):
    for i in range(5):
        run(capsys, "subscribers", "add", f"p{i}@example.org")
    code, out, _ = run(capsys, "subscribers", "list", "--limit", "2")
    assert code == 0 and "1-2 of 5" in out
    after = re.search(r"next page: --after (\d+)", out).group(1)
    _, out, _ = run(capsys, "subscribers", "list", "--limit", "2", "--after", after)
    assert "p2@example.org" in out and "p3@example.org" in out and "p1@example.org" not in out
    after = re.search(r"next page: --after (\d+)", out).group(1)
    _, out, _ = run(capsys, "subscribers", "list", "--limit", "2", "--after", after)
    assert "p4@example.org" in out and "1 of 5" in out and "next page" not in out


def test_user_text_is_printed_literally_not_as_markup(db, capsys):
    run(capsys, "subscribers", "add", "ann@example.org", "--name", "[red]Ann[/red]")
    _, out, _ = run(capsys, "subscribers", "list")
    assert "[red]Ann[/red]" in out


def test_bad_input_is_one_line_and_exit_2(db, capsys):
    code, out, err = run(capsys, "subscribers", "add", "not-an-address")
    assert code == 2 and err.startswith("drip: error: email:") and err.count("\n") == 1
    code, _, err = run(capsys, "subscribers", "add", "a@example.org", "--tz", "Mars/Base")
    assert code == 2 and "drip: error: tz: unknown time zone 'Mars/Base'" in err
    code, _, err = run(capsys, "subscribers", "show", "nobody@example.org")
    assert code == 2 and "no subscriber" in err
    code, _, err = run(capsys, "subscribers", "list", "--status", "sleeping")
    assert code == 2 and "--status" in err
    code, _, err = run(capsys, "subscribers", "import", "missing.csv")
    assert code == 2 and err.strip() == "drip: error: missing.csv: no such file"
    assert subscribers_in(db) == 0


def test_import_skips_bad_rows_lists_them_and_exits_0(db, tmp_path, capsys):
    code, out, err = run(capsys, "subscribers", "import", str(csv_file(tmp_path, bad_address=True)), "--tag", "2026")
    assert code == 0
    assert "4 rows: 2 created" in out and "2 skipped" in out
    assert "│    4 │ email" in err and "│    5 │ tz" in err and "warning: 2 row(s) skipped" in err
    assert subscribers_in(db) == 2
    code, out, _ = run(capsys, "subscribers", "list", "--tag", "2026")
    assert "ann@example.org" in out and "bob@example.org" in out


def test_import_strict_refuses_the_whole_file_with_exit_2(db, tmp_path, capsys):
    path = csv_file(tmp_path, bad_address=True)
    code, out, err = run(capsys, "subscribers", "import", str(path), "--strict")
    assert code == 2
    assert "rows refused" in err and "│    4 │ email" in err
    assert err.rstrip().splitlines()[-1] == f"drip: error: {path}: 2 bad row(s) of 4; nothing imported (--strict)"
    assert subscribers_in(db) == 0


def test_import_error_table_shows_fifty_rows_and_a_count(db, tmp_path, capsys):
    path = tmp_path / "many.csv"
    path.write_text("email\n" + "".join(f"bad{i}\n" for i in range(60)), encoding="utf-8")
    code, _, err = run(capsys, "subscribers", "import", str(path))
    assert code == 0
    assert "│   51 │" in err and "│   52 │" not in err and "... and 10 more problem(s)" in err


def test_list_search_with_sql_metacharacters(db, capsys):
    run(capsys, "subscribers", "add", "ann@example.org")
    for needle in ["'; drop table subscribers; --", "%", "_"]:
        code, out, _ = run(capsys, "subscribers", "list", "--search", needle)
        assert code == 0 and "none of 0" in out
    assert subscribers_in(db) == 1


def test_console_script_exit_codes(db, tmp_path):
    """The real entry point in a fresh process: the exit code is what a shell script sees."""
    env = {**os.environ, "DRIP_DATABASE_URL": os.environ["DRIP_DATABASE_URL"],
           "DRIP_CONFIG": os.environ["DRIP_CONFIG"], "DRIP_DATA_DIR": os.environ["DRIP_DATA_DIR"]}
    path = csv_file(tmp_path, bad_address=False)
    strict = subprocess.run([sys.executable, "-m", "drip.cli", "subscribers", "import", str(path), "--strict"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert strict.returncode == 2, strict.stderr
    assert "nothing imported" in strict.stderr and "Traceback" not in strict.stderr
    fine = subprocess.run([sys.executable, "-m", "drip.cli", "subscribers", "import", str(path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert fine.returncode == 0 and "2 created" in fine.stdout

"""`drip status` as a person reads it: 80 columns, a limit with a "more" line, step titles,
exit 2 for an unknown campaign (README: bad input -> one line, exit 2)."""

from __future__ import annotations

import re

import pytest

LONG_NAME = "Maximiliana Featherstonehaugh-Worthington"


@pytest.fixture
def drip(tmp_path, monkeypatch, capsys):
    for key, value in {
        "DRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'status.sqlite3'}",
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_OUTBOX_DIR": str(tmp_path / "outbox"),
        "DRIP_SECRET_KEY": "status-test",
        "DRIP_CONFIG": str(tmp_path / "none.toml"),
        "COLUMNS": "80",
    }.items():
        monkeypatch.setenv(key, value)

    def run(*args: str) -> tuple[int, str, str]:
        from drip.cli import main

        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def enrolled(drip, seed_path):
    assert drip("import", str(seed_path), "--campaign", "onboarding", "--every", "1d", "--window",
                "daily 00:00-23:59", "--publish", "--yes")[0] == 0
    for email, name, tz in [("maxi@example.org", LONG_NAME, "America/Argentina/Buenos_Aires"),
                            ("li@example.org", "Li", "Asia/Tokyo")]:
        assert drip("subscribers", "add", email, "--name", name, "--tz", tz)[0] == 0
        assert drip("enroll", email, "--campaign", "onboarding")[0] == 0
    return drip


def test_status_fits_80_columns_without_cutting_names_or_statuses(enrolled):
    code, out, _ = enrolled("status")
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in out  # nothing is cut off with an ellipsis
    assert len(re.findall(r"\bscheduled\b", out)) == 26  # every row's status in full (13 steps x 2)
    patients = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert LONG_NAME.replace(" ", "") in patients and "America/Argentina/Buenos_Aires" in patients  # wrapped, whole


def test_status_shows_step_titles_not_slugs(enrolled):
    out = enrolled("status", "--email", "li@example.org")[1]
    assert "2. Release of Endorphins" in out
    assert not re.search(r"\d+\. (intro|item|outro)-?\d*\b", out)


def test_status_limit_says_how_many_more(enrolled):
    code, out, _ = enrolled("status", "--limit", "5")
    assert code == 0
    assert len(re.findall(r"\bscheduled\b", out)) == 5
    assert "21 more not shown" in out
    assert "more not shown" not in enrolled("status", "--limit", "26")[1]
    assert "more not shown" not in enrolled("status")[1]  # the default (50) shows all 26


def test_status_of_an_unknown_campaign_or_patient_exits_2(enrolled):
    code, out, err = enrolled("status", "--campaign", "nope")
    assert code == 2 and err.strip() == "drip: error: --campaign: no campaign 'nope'" and out == ""
    code, _, err = enrolled("status", "--email", "nobody@example.org")
    assert code == 2 and "no subscriber" in err

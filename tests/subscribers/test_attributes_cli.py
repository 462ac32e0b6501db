"""`drip attributes define / list / set` end to end (drip.cli.main on a temp SQLite file)."""

from __future__ import annotations

from tests.subscribers.test_cli import db, run  # noqa: F401  (fixture and helper)


def test_define_list_set(db, capsys):  # noqa: F811
    assert run(capsys, "subscribers", "add", "ann@example.org")[0] == 0
    code, out, err = run(capsys, "attributes", "define", "first_visit", "date", "--label", "First visit")
    assert code == 0 and "defined first_visit: date" in out, err
    code, out, _ = run(capsys, "attributes", "define", "slot", "choice", "--choices", "Morning, Afternoon")
    assert code == 0 and "(Morning, Afternoon)" in out
    code, out, _ = run(capsys, "attributes", "list")
    assert "first_visit\tdate\tFirst visit" in out and "slot\tchoice" in out
    code, out, err = run(capsys, "attributes", "set", "ann@example.org", "first_visit=2027-01-12", "slot=morning")
    assert code == 0 and "first_visit, slot changed" in out, err
    code, _, err = run(capsys, "attributes", "set", "ann@example.org", "first_visit=soon")
    assert code == 2 and "attributes.first_visit" in err and "not a date" in err and "Traceback" not in err
    code, _, err = run(capsys, "attributes", "define", "x", "colour")
    assert code == 2 and "unknown attribute type" in err

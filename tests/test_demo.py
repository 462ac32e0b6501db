"""`make demo` next to real use: the demo keeps to its own database and outbox, so a real
`drip run` afterwards never overwrites the demo's emails (both number deliveries from 1)."""

from __future__ import annotations

import json
import os

from drip.cli import main as drip
from drip.demo import demo_paths, main as demo


def run(*args: str) -> None:
    try:
        drip(list(args))
    except SystemExit as exc:
        assert not exc.code, args


def test_a_real_run_after_the_demo_leaves_the_demo_emails_alone(tmp_path, monkeypatch, seed_path, capsys):
    for key in [k for k in os.environ if k.startswith(("DRIP_", "SENDGRID_"))]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # the defaults (.drip/drip.sqlite3, outbox/) are relative to here
    assert demo(tmp_path) == 0
    data, demo_outbox, demo_preview = demo_paths(tmp_path)
    index = (demo_outbox / "index.jsonl").read_bytes()
    ids = [json.loads(line)["delivery_id"] for line in index.splitlines()]
    assert len(ids) == len(set(ids)) == 65 and 1 in ids
    first = (demo_outbox / "1.eml").read_bytes()
    assert (demo_preview / "index.html").exists() and (data / "drip.sqlite3").exists()

    run("import", str(seed_path), "--campaign", "onboarding", "--every", "0d", "--window", "daily 00:00-23:59",
        "--publish", "--yes")  # the seed has review warnings
    run("subscribers", "add", "real@example.org", "--name", "Real Patient", "--tz", "Europe/Paris")
    run("enroll", "real@example.org", "--campaign", "onboarding")
    run("run", "--once")
    capsys.readouterr()

    real = tmp_path / "outbox"
    assert [p.name for p in real.glob("*.eml")] == ["1.eml"]  # delivery 1 of the real database...
    assert b"real@example.org" in (real / "1.eml").read_bytes()
    assert (demo_outbox / "1.eml").read_bytes() == first  # ...and the demo's delivery 1, untouched
    assert (demo_outbox / "index.jsonl").read_bytes() == index
    assert (tmp_path / ".drip" / "drip.sqlite3").exists()

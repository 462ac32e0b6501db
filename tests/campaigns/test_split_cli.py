"""`drip split FILE [--json]`: the table, the exact JSON contract, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from campaigns.split import split_file
from drip.cli import main

ROOT = Path(__file__).resolve().parents[2]
DRIP = ROOT / ".venv" / "bin" / "drip"


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


def run_drip(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = [str(DRIP)] if DRIP.exists() else [sys.executable, "-m", "drip.cli"]
    env = {**os.environ, "LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": ""}  # JSON must be UTF-8 anyway
    return subprocess.run([*exe, *args], cwd=cwd, env=env, capture_output=True, timeout=60)


def test_json_is_exactly_the_draft_contract(seed_path, capsys):
    code, out, err = run_main(["split", str(seed_path), "--json"], capsys)
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data == split_file(seed_path).to_json()
    assert set(data) == {"title", "steps", "warnings"}  # warnings: campaigns/review.py
    assert all(set(step) == {"kind", "section", "title", "subject", "text", "preheader"} for step in data["steps"])
    assert "\u2019" in out and "\\u2019" not in out  # ensure_ascii=False


def test_table_lists_every_step(seed_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = run_main(["split", str(seed_path)], capsys)
    assert code == 0
    header = next(line for line in out.splitlines() if "kind" in line)
    assert [h.strip() for h in header.strip("┃ ").split("┃")] == ["#", "kind", "section", "title", "subject", "words"]
    assert "Acupuncture for Pain Relief and Muscle Spasm" in out.splitlines()[0]
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == 13
    assert "How acupuncture works: release of endorphins" in rows[1] and "Release of Endorphins" in rows[1]
    assert rows[1].rstrip("│ ").endswith("21")  # words in the step's text
    assert "\n10 items, 13 steps\n2 to review before publishing:\n" in out  # warnings follow (test_review.py)


@pytest.mark.parametrize(
    "name, content, message",
    [("missing.txt", None, "no such file"), ("notes.pdf", b"%PDF-1.4", "unsupported file type .pdf"),
     ("plain.txt", b"Just one paragraph.\n", "no items found")],
)
def test_errors_are_one_line_and_exit_2_via_main(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, out, err = run_main(["split", str(path), "--json"], capsys)
    assert code == 2 and out == ""
    assert err == f"drip: error: {path}: {message}" + err.split(message, 1)[1]
    assert err.count("\n") == 1


@pytest.mark.parametrize("name, message", [("missing.txt", "no such file"), ("blob.md", "binary file")])
def test_subprocess_errors_are_one_line_exit_2_and_write_nothing(tmp_path, name, message):
    (tmp_path / "blob.md").write_bytes(b"\x00\x01\x02binary")
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_drip("split", name, "--json", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"drip: error: {name}: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_subprocess_json_is_utf8_under_a_c_locale(seed_path, tmp_path):
    proc = run_drip("split", str(seed_path), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.decode("utf-8"))
    assert len([s for s in data["steps"] if s["kind"] == "item"]) == 10
    assert "’".encode() in proc.stdout

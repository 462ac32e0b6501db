"""The README's API example, run as written on a fresh install: the code block is parsed out of
README.md and each command runs for real in an empty folder (the `drip` of this virtualenv, a real
`drip serve` subprocess on a free loopback port, real curl). If the README drifts (a flag, a
sample's name, a slug that does not match, a path), this fails."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.web.serve_process import ServeProcess, drip_env

README_URL = "http://127.0.0.1:8000"  # `drip serve`'s default address, as the README's curl lines use it


def readme_block() -> list[str]:
    """The commands of the README's API example: its ```sh block that starts `drip serve`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    found = [b for b in blocks if re.search(r"^drip serve\b.*&", b, re.M) and "/api/v1/subscribers" in b]
    assert len(found) == 1, "the README's API example (a sh block with `drip serve &` and the API calls) is gone"
    return [line.strip() for line in found[0].replace("\\\n", " ").splitlines() if line.strip()]


def test_the_block_has_what_a_fresh_install_needs():
    lines = readme_block()
    kinds = [line.split()[0] for line in lines]
    assert kinds[0] == "drip" and "import" in lines[0], "the block starts by creating the campaign"
    assert any(line.startswith("TOKEN=$(drip api-token create") for line in lines)
    assert sum(1 for line in lines if line.startswith("curl ")) >= 2


def _without_comment(line: str) -> str:
    return re.sub(r"\s+#[^'\"]*$", "", line)


@pytest.mark.timeout(180)
def test_the_readme_api_example_runs_on_a_fresh_install(tmp_path: Path):
    (tmp_path / "drip" / "samples").mkdir(parents=True)  # what a fresh checkout has, and nothing more
    for sample in (ROOT / "drip" / "samples").iterdir():
        shutil.copy(sample, tmp_path / "drip" / "samples" / sample.name)
    env = drip_env(tmp_path)
    server: ServeProcess | None = None
    answers: list[tuple[str, int, str]] = []
    try:
        for raw in readme_block():
            line = _without_comment(raw)
            serve = re.fullmatch(r"drip serve((?:\s+--?[\w-]+)*)\s*&", line)
            assign = re.fullmatch(r"([A-Z_]+)=\$\((.*)\)", line)
            if serve:
                assert server is None, "one server"
                server = ServeProcess(tmp_path, env, *serve.group(1).split()).start()
            elif assign:
                done = subprocess.run(["sh", "-c", assign.group(2)], env=env, cwd=tmp_path, capture_output=True,
                                      text=True, timeout=60)
                assert done.returncode == 0 and done.stdout.strip(), f"{raw!r}: {done.stderr[-2000:]}"
                env[assign.group(1)] = done.stdout.strip()
            elif line.startswith("curl "):
                assert server is not None, f"{raw!r} runs before `drip serve`"
                assert README_URL in line, f"{raw!r} does not call {README_URL} (where `drip serve` listens)"
                command = line.replace(README_URL, server.url) + " -sS -w '\\n%{http_code}'"
                done = subprocess.run(["sh", "-c", command], env=env, cwd=tmp_path, capture_output=True,
                                      text=True, timeout=60)
                assert done.returncode == 0, f"{raw!r}: {done.stderr[-2000:]}"
                body, _, code = done.stdout.rpartition("\n")
                assert code.startswith("2"), f"{raw!r} answered {code}: {body[:2000]}"
                answers.append((line, int(code), body))
            else:
                done = subprocess.run(["sh", "-c", line], env=env, cwd=tmp_path, capture_output=True, text=True,
                                      timeout=120)
                assert done.returncode == 0, f"{raw!r} exited {done.returncode}: {done.stderr[-2000:]}"
                assert "Traceback" not in done.stderr
    finally:
        if server is not None:
            server.stop()

    listed, created = answers[0], answers[-1]
    slugs = [c["slug"] for c in json.loads(listed[2])]
    body = json.loads(re.search(r"-d '([^']+)'", created[0]).group(1))
    assert body["enroll"] in slugs, "the campaign the example enrolls in is the one the example imported"
    assert created[1] == 201
    result = json.loads(created[2])
    assert result["email"] == body["email"] and result["enrollment"]["campaign"] == body["enroll"]
    with sqlite3.connect(tmp_path / ".drip" / "drip.sqlite3") as conn:  # the fresh install's own database
        steps = conn.execute("SELECT count(*) FROM steps s JOIN campaigns c ON c.id = s.campaign_id "
                             "WHERE c.slug = ?", (body["enroll"],)).fetchone()[0]
        scheduled = conn.execute("SELECT count(*) FROM deliveries WHERE status = 'scheduled'").fetchone()[0]
    assert steps > 1 and result["enrollment"]["scheduled"] == scheduled == steps

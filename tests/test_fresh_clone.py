"""A `git clone` with nothing beside it tests green: the project ships every file its tests and
its demo read (the seed article in drip/samples, SendGrid's OpenAPI spec under tests/fixtures).
A user's clone has no ../shared; this one has nothing beside it at all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[1]
#: Quick tests that read the shipped files: the seed split, and the demo next to a real run.
SUBSET = ["tests/campaigns/test_split_seed.py", "tests/test_demo.py"]


@pytest.mark.slow  # a clone, a pytest run and the demo inside it: ~10 s
def test_a_clone_with_nothing_beside_it_runs_the_tests_and_the_demo(tmp_path):
    need(shutil.which("git") is not None and (ROOT / ".git").exists(), "git and this project's repository")
    clone = tmp_path / "drip"
    done = subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == [clone]  # no ../shared, no ../anything
    spec = clone / "tests" / "fixtures" / "sendgrid-oai"
    assert (spec / "LICENSE").exists() and "/v3/mail/send" in json.loads((spec / "tsg_mail_v3.json").read_text())["paths"]

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIP_", "SENDGRID_", "PYTEST_"))}
    # The clone's own code first on the path (ahead of this checkout's editable install), and
    # CI=true so a file that is missing fails instead of skipping.
    env.update(PYTHONPATH=str(clone), CI="true", COLUMNS="100")
    where = subprocess.run([sys.executable, "-c", "import drip, campaigns, tests; print(drip.__file__, campaigns.__file__)"],
                           cwd=clone, env=env, capture_output=True, text=True, timeout=60)
    assert all(p.startswith(str(clone)) for p in where.stdout.split()), where.stdout + where.stderr

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *SUBSET],
                           cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else tests.stderr
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary and "error" not in summary, summary
    assert (clone / "drip" / "samples" / "acupuncture-pain-relief.txt").exists()

"""`drip bench render` runs and reports both paths (no timing assertions: the numbers are the bench's job)."""

from __future__ import annotations

import json

from bench import BENCHES
from bench.render import _builtin_draft
from campaigns.render import Renderer, content_from_draft
from drip.cli import main
from drip.config import Clinic
from tests.campaigns.render_samples import recipient


def test_bench_cli_reports_rate_baseline_and_ratio(capsys):
    assert BENCHES["render"] == "bench.render"
    try:
        main(["bench", "render", "--quick", "--json"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["bench"] == "render" and data["unit"] == "emails/s"
    assert data["rate"] > 0 and data["baseline"] > 0 and data["ratio"] > 0
    assert data["steps"] >= 10 and data["max_html_kb"] < 102


def test_builtin_sample_renders_when_the_seed_is_absent():
    d = _builtin_draft()
    renderer = Renderer(Clinic())
    texts = [renderer.render(content_from_draft(d, i), recipient()).text for i in range(len(d.steps))]
    assert len(d.items) >= 5 and all("Hi Maria," in t for t in texts)

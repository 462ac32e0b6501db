"""`drip bench enroll` measures what it says: the same patients, both paths, every check applied (no timings asserted)."""

from __future__ import annotations

from bench import BENCHES
from bench.enroll import STEPS, _measure


def test_bench_enroll_counts_both_paths(tmp_path):
    assert BENCHES["enroll"] == "bench.enroll"
    out = _measure(f"sqlite:///{tmp_path / 'bench.sqlite3'}", 300, 30, 100)
    # 300 patients less 6 unsubscribed, 3 suppressed, 2 opted out; the first 30 less one of each
    assert (out["enrolled"], out["deliveries"], out["baseline_enrolled"]) == (289, 289 * STEPS, 27)
    assert out["patients_per_s"] > 0 and out["ratio"] > 0 and out["patients_per_s_100"] > 0
    assert out["peak_rss_mb_300"] >= out["rss_before_enroll_mb"] > 0 and out["peak_rss_mb_100"] > 0

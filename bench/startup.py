"""`drip bench startup`: how long `drip` takes to start, against `python -c "import typer"`.

Every command is a fresh process, so start-up is what a person at the prompt (and a cron job)
waits for. The baseline is the least any typer CLI can take: the interpreter plus `import typer`,
measured in the same run, interleaved with the commands round by round so load on the shared
machine hits both alike; each figure is the median of its rounds. The goal is every command's
`--help` within 3x the baseline, and `drip run --once` with nothing due within 3x `drip --help`
(delivery/due_check.py answers it without SQLAlchemy's ORM, Alembic, the renderer or a backend).
Lower is better here: the ratio is command time / baseline time.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import BenchResult

HELP_COMMANDS: list[tuple[str, ...]] = [
    ("--help",), ("split", "--help"), ("preview", "--help"), ("import", "--help"), ("campaigns", "--help"),
    ("campaigns", "show", "--help"), ("subscribers", "--help"), ("broadcast", "--help"), ("run", "--help"),
    ("status", "--help"), ("serve", "--help"), ("bench", "--help"), ("staff", "--help"), ("api-token", "--help"),
]
BASELINE = [sys.executable, "-c", "import typer"]
LIMIT = 3.0


def _time(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[2:])} exited {done.returncode}: {done.stderr.decode()[-300:]}")
    return elapsed


def _empty_database(folder: Path) -> dict[str, str]:
    """An environment whose database is migrated and has nothing due."""
    from drip.db import make_engine, migrate

    url = f"sqlite:///{folder / 'drip.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return {**os.environ, "DRIP_DATABASE_URL": url, "DRIP_DATA_DIR": str(folder), "DRIP_OUTBOX_DIR": str(folder / "outbox"),
            "DRIP_SECRET_KEY": "bench-startup", "DRIP_CONFIG": str(folder / "none.toml"), "COLUMNS": "100"}


def run(quick: bool = False) -> BenchResult:
    rounds = 3 if quick else 11
    commands = HELP_COMMANDS[:4] if quick else HELP_COMMANDS
    with tempfile.TemporaryDirectory(prefix="drip-bench-startup-") as tmp:
        env = _empty_database(Path(tmp))
        drip = [sys.executable, "-m", "drip"]
        once = (*drip, "run", "--once")
        times: dict[str, list[float]] = {"baseline": [], "run --once": []}
        for args in commands:
            times[" ".join(args)] = []
        _time(BASELINE, env), _time([*drip, "--help"], env)  # warm the file cache and .pyc files
        for _ in range(rounds):
            times["baseline"].append(_time(BASELINE, env))
            for args in commands:
                times[" ".join(args)].append(_time([*drip, *args], env))
            times["run --once"].append(_time(list(once), env))
    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    base = median.pop("baseline")
    once_ms = median.pop("run --once")
    slowest = max(median, key=median.get)
    details: dict = {f"drip {name}": f"{ms:.0f} ms ({ms / base:.2f}x)" for name, ms in median.items()}
    details["drip run --once, nothing due"] = (
        f"{once_ms:.0f} ms ({once_ms / base:.2f}x typer, {once_ms / median['--help']:.2f}x drip --help)")
    details["limit"] = f"every --help <= {LIMIT}x typer; run --once <= {LIMIT}x drip --help"
    details["within limit"] = max(median.values()) <= LIMIT * base and once_ms <= LIMIT * median["--help"]
    details["ratio_run_once_vs_help"] = round(once_ms / median["--help"], 2)
    details["rounds"] = rounds
    details["load average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return BenchResult("startup", "ms", median[slowest], base, details,
                       label=f"slowest start, drip {slowest} (lower is better)",
                       baseline_label='python -c "import typer"')

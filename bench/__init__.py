"""Benchmarks: `drip bench NAME [--json]`. Each prints a rate and a baseline measured in the same
run, and their ratio (the machine is shared and noisy, so only same-run ratios mean much).

Each module in BENCHES has `run(quick: bool) -> BenchResult`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

BENCHES: dict[str, str] = {
    # name -> module (added by each area as it lands)
    "dispatch": "bench.dispatch",
    "due-query": "bench.due_query",
    "sendgrid": "bench.sendgrid",
    "render": "bench.render",
    "import": "bench.csv_import",
    "smtp": "bench.smtp",
    "split": "bench.split",
    "flaky": "bench.flaky",
    "startup": "bench.startup",
    "enroll": "bench.enroll",
    "webhooks": "bench.webhooks",
    "workers": "bench.workers",
    "scale": "bench.scale",
}


@dataclass
class BenchResult:
    bench: str
    unit: str
    rate: float
    baseline: float
    details: dict = field(default_factory=dict)
    label: str = ""
    baseline_label: str = ""

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline if self.baseline else float("inf")

    def json_line(self) -> str:
        data = {"bench": self.bench, "unit": self.unit, "rate": round(self.rate, 1),
                "baseline": round(self.baseline, 1), "ratio": round(self.ratio, 2)}
        data.update({k: v for k, v in self.details.items() if k not in data})
        return json.dumps(data)


def analyze(conn, tables: tuple[str, ...] = ("subscribers", "enrollments", "deliveries", "steps", "campaigns")) -> None:
    """Refresh the planner's statistics for the bench's own tables only.

    A bare `ANALYZE` on PostgreSQL visits every table of the database, in every schema, taking a
    lock on each: run beside a test session on the same database it deadlocked that session's
    TRUNCATE. So the names are qualified with the connection's own schema (the bench's), and on
    SQLite (one file, the bench's) the same tables are named.
    """
    from sqlalchemy import text

    if conn.dialect.name == "postgresql":
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        quoted = ", ".join(f'"{schema}"."{t}"' for t in tables)
        conn.execute(text(f"ANALYZE {quoted}"))
    else:
        for t in tables:
            conn.execute(text(f'ANALYZE "{t}"'))

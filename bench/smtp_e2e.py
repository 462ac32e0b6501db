"""The SMTP part of `drip bench smtp` end to end: dispatcher + SQLite ledger + SMTPBackend +
Postfix's smtp-sink (bench/smtp_sink.py), N seed emails due now.

Baseline, same run: the code path before the pool, kept selectable: one connection in lock-step
(`smtp_connections=1`, `smtp_pipelining=False`). New: the pipelined pool (the defaults). Runs
alternate (baseline, new, baseline, new) and the best of each counts, so load changes on a shared
machine hit both alike.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.dispatch import T0, _setup
from delivery.backends.smtp import SMTPBackend
from delivery.dispatcher import Dispatcher


def _once(n: int, port: int, **smtp) -> float:
    with tempfile.TemporaryDirectory(prefix="drip-bench-smtp-") as tmp:
        rt = _setup(Path(tmp), n, 500)
        rt.settings = rt.settings.with_(backend="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=10.0,
                                        **smtp)
        with SMTPBackend(rt.settings) as backend:
            d = Dispatcher(rt, backend, clock=lambda: T0)
            start = time.perf_counter()
            report = d.tick()
            elapsed = time.perf_counter() - start
        rt.close()
    if report.sent != n:
        raise RuntimeError(f"end-to-end bench sent {report.sent} of {n} ({report})")
    return n / elapsed


def run(quick: bool) -> dict:
    """Details for `drip bench smtp`: e2e_* keys."""
    from bench.smtp_sink import SmtpSink, available

    n = 1000 if quick else 5000
    why = available()
    if why is not None:
        return {"e2e_skipped": f"smtp-sink unavailable: {why}"}
    from drip.config import Settings

    connections = Settings().smtp_connections
    base, new = [], []
    with SmtpSink() as sink:
        _once(100, sink.port)  # warm up: imports, first connection
        for _ in range(2):
            base.append(_once(n, sink.port, smtp_connections=1, smtp_pipelining=False))
            new.append(_once(n, sink.port, smtp_connections=connections, smtp_pipelining=True))
        accepted = sink.stop()
    return {
        "e2e_emails": n,
        "e2e_server": "postfix smtp-sink (Debian package, unpacked)",
        "e2e_pipelined_pool_emails_s": round(max(new)),
        "e2e_pool_connections": connections,
        "e2e_one_connection_lock_step_emails_s": round(max(base)),
        "e2e_ratio": round(max(new) / max(base), 2),
        "e2e_runs_emails_s": {"lock_step": [round(x) for x in base], "pool": [round(x) for x in new]},
        "e2e_sink_messages": accepted,
        "e2e_target": ">= 3x one connection lock-step",
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }

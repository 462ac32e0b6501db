"""The SMTP part of `drip bench smtp` end to end: dispatcher + SQLite ledger + SMTPBackend +
Postfix's smtp-sink (bench/smtp_sink.py), N seed emails due now.

Baseline, same run: the code path before the pool, kept selectable: one connection in lock-step
(`smtp_connections=1`, `smtp_pipelining=False`). New: the pipelined pool (the defaults). Runs
alternate (baseline, new, baseline, new) and the best of each counts, so load changes on a shared
machine hit both alike. The worker's CPU per email is reported too: on a loaded 2-core machine the
pool's wall-clock gain is capped by the CPU share the worker gets, not by the wire.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.dispatch import T0, _setup
from delivery.backends.smtp import SMTPBackend
from delivery.dispatcher import Dispatcher


def _once(n: int, port: int, **smtp) -> tuple[float, float]:
    """(emails/s wall, CPU us per email of this process, all threads)."""
    with tempfile.TemporaryDirectory(prefix="drip-bench-smtp-") as tmp:
        rt = _setup(Path(tmp), n, 500)
        rt.settings = rt.settings.with_(backend="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=10.0,
                                        **smtp)
        with SMTPBackend(rt.settings) as backend:
            d = Dispatcher(rt, backend, clock=lambda: T0)
            start, cpu = time.perf_counter(), time.process_time()
            report = d.tick()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        rt.close()
    if report.sent != n:
        raise RuntimeError(f"end-to-end bench sent {report.sent} of {n} ({report})")
    return n / elapsed, cpu / n * 1e6


def run(quick: bool) -> dict:
    """Details for `drip bench smtp`: e2e_* keys."""
    from bench.smtp_sink import SmtpSink, available

    n = 1000 if quick else 5000
    why = available()
    if why is not None:
        return {"e2e_skipped": f"smtp-sink unavailable: {why}"}
    from drip.config import Settings

    connections = Settings().smtp_connections
    base, new, base_cpu, new_cpu = [], [], [], []
    with SmtpSink() as sink:
        _once(100, sink.port)  # warm up: imports, first connection
        for _ in range(2):
            rate, cpu = _once(n, sink.port, smtp_connections=1, smtp_pipelining=False)
            base.append(rate), base_cpu.append(cpu)
            rate, cpu = _once(n, sink.port, smtp_connections=connections, smtp_pipelining=True)
            new.append(rate), new_cpu.append(cpu)
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
        # the worker's own CPU per email (load-independent): what bounds it on a busy machine
        "e2e_cpu_us_per_email": {"lock_step": round(min(base_cpu)), "pool": round(min(new_cpu))},
        "e2e_target": ">= 3x one connection lock-step",
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }

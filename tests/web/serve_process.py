"""A real `drip serve` (optionally `--worker`) as a subprocess on a free loopback port.

The server is started with `--port 0` and the port is read from uvicorn's "Uvicorn running on"
line (no free-port guess that another process could take first). Its output goes to files, so a
chatty server never blocks on a full pipe; stop() sends SIGTERM and waits.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent  # the virtualenv's `drip`
_RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def drip_env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh install in `folder`: no DRIP_* or provider settings from the
    calling shell, the venv's `drip` first on PATH, no config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIP_", "SENDGRID_", "SMTP_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["DRIP_CONFIG"] = str(folder / "no-drip.toml")
    env.update(extra)
    return env


class ServeProcess:
    def __init__(self, folder: Path, env: dict[str, str], *args: str) -> None:
        self.folder = folder
        self.env = env
        self.args = ["drip", "serve", "--host", "127.0.0.1", "--port", "0", *args]
        self.log = folder / f"serve-{os.getpid()}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def start(self, timeout: float = 60) -> "ServeProcess":
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, cwd=self.folder, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _RUNNING.search(self.output())
            if found:
                self.port = int(found.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"`{' '.join(self.args)}` did not start:\n{self.output()[-3000:]}")

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

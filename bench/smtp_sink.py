"""Postfix's `smtp-sink` for the benches: a real, fast, multi-session SMTP server in C that
accepts everything (and announces PIPELINING), so the client side is what gets measured.

Debian's postfix package is fetched with `apt-get download postfix` and unpacked with `dpkg -x`
into a cache folder of the benches (`.drip/bench-cache/postfix`, or `DRIP_BENCH_CACHE`): no
installation, no daemon, no root needed beyond what apt-get download needs (nothing). Without
apt-get/dpkg (or offline), `available()` says why and the benches fall back to aiosmtpd.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("DRIP_BENCH_CACHE", ".drip/bench-cache")) / "postfix"


def binary() -> Path:
    """The unpacked smtp-sink, fetching and unpacking the package the first time."""
    root = cache_dir()
    sink = root / "root" / "usr" / "sbin" / "smtp-sink"
    if sink.exists():
        return sink
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        raise RuntimeError("smtp-sink needs apt-get and dpkg (Debian/Ubuntu) to fetch the postfix package")
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "postfix"], cwd=root, check=True, capture_output=True, timeout=120)
    (deb,) = sorted(root.glob("postfix_*.deb"))[-1:]
    subprocess.run(["dpkg", "-x", str(deb), str(root / "root")], check=True, capture_output=True, timeout=120)
    if not sink.exists():
        raise RuntimeError(f"no smtp-sink in {deb}")
    return sink


def available() -> str | None:
    """None when smtp-sink can run here, else why not."""
    try:
        binary()
        return None
    except Exception as exc:  # offline, not Debian, ...
        return " ".join(str(exc).split())[:200]


class SmtpSink:
    """`smtp-sink -c 127.0.0.1:PORT BACKLOG` in a process of its own; `.port`, `.messages()`.
    `dump`: a folder where each message is written to its own file (`-d`), for counting doubles."""

    def __init__(self, backlog: int = 1000, dump: Path | None = None) -> None:
        sink = binary()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        libs = sink.parents[2] / "usr" / "lib" / "postfix"
        env = dict(os.environ, LD_LIBRARY_PATH=f"{libs}:{os.environ.get('LD_LIBRARY_PATH', '')}")
        cmd = [str(sink), "-c"]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]  # it refuses to run as root otherwise
        if dump is not None:
            dump.mkdir(parents=True, exist_ok=True)
            os.chmod(dump, 0o777)
            cmd += ["-d", f"{dump}/m."]  # one file per message (the name gets a random hex suffix)
        cmd += [f"127.0.0.1:{self.port}", str(backlog)]
        # -c writes a counter line per event: to a file, never a pipe (a full pipe stops the sink)
        self._out = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self._out.seek(0)
                    out = self._out.read().decode(errors="replace")
                    raise RuntimeError(f"smtp-sink did not start: {out[-300:]}")
                time.sleep(0.05)

    def stop(self) -> int | None:
        """Stop it; the message count it printed (`-c`), if any."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.seek(0)
        found = re.findall(rb"mesg=(\d+)", self._out.read())
        self._out.close()
        return int(found[-1]) if found else None

    def __enter__(self) -> "SmtpSink":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.stop()

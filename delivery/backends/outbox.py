"""The default backend: no account needed, every email lands as files in `settings.outbox_dir`.

Per message: `<delivery_id>.eml` (the exact MIME bytes an SMTP server would get) and
`<delivery_id>.html` (the HTML body, to open in a browser). Files are named by delivery id, not
by Message-ID or time, so a resend of the same delivery (a retry after a crash, a reclaimed
lease) overwrites its files instead of adding a second copy: the outbox is idempotent by delivery
id, just as the delivery row is. Each file is written to a temporary name and `os.replace`d, so a
crash never leaves a half-written `.eml`/`.html` under the real name (at worst a stray hidden
`.tmp`). There is no fsync per message: this guards against a dying process, not a dying disk,
which is the right trade for a development outbox that must keep up with 2,000 emails/s.

A message with delivery id 0 is no ledger row but a one-off (a staff member's test email,
web/staff/emails.py): each gets a file name of its own (`test-<UTC time>-<random>.eml`), so the
tenth test does not overwrite the first nine. (A confirmation email's id is minus the subscriber's:
a new one replaces that patient's earlier, unused one on purpose.)

`index.html` lists the newest messages (time, to, subject, links). Rebuilding it per message
would cost O(n) each time, so each `send_batch` appends one line per message to `index.jsonl`
(one O_APPEND write, the source of truth) and `index.html` is rebuilt from the tail of that log
only (~10 ms), under a file lock: after a batch when the last rebuild is over a second old, and
on `close()`. So a stream of one-message batches does not pay 10 ms each, and several batches
and worker processes still leave a complete index (at most a second behind while sending).
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import os
import re
import secrets
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

try:  # POSIX: serialise index updates between worker processes
    import fcntl
except ImportError:  # pragma: no cover - Windows: single process is the supported case there
    fcntl = None  # type: ignore[assignment]

from drip.config import Settings
from drip.errors import BackendUnavailable, ConfigurationError
from delivery.backends.base import BaseBackend
from delivery.mime import UnsafeHeaderError, build_message, domain_of
from delivery.types import OutgoingMessage, SendResult

log = logging.getLogger("drip.outbox")

INDEX_ROWS = 1000  # index.html shows the newest this many deliveries; all files stay in the folder
INDEX_REFRESH_SECONDS = 1.0
_TAIL_BLOCK = 64 * 1024
_tmp_counter = itertools.count()
ONE_OFF_ID = 0  # not a delivery row: web/staff/emails.TEST_DELIVERY_ID


def one_off_stem() -> str:
    """A file name no other message has: time first, so a folder listing sorts by when it was sent."""
    return f"test-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the whole new one, never a part."""
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{next(_tmp_counter)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:  # raw os.write: no file object per message
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_tail_lines(path: Path, count: int) -> list[bytes]:
    """The last `count` complete lines of a file, reading backwards in blocks (not the whole log)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return []
    with fh:
        end = fh.seek(0, os.SEEK_END)
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= count:
            step = min(_TAIL_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    lines = data.split(b"\n")
    if pos > 0:
        lines = lines[1:]  # the first one may be cut
    return [line for line in lines if line.strip()][-count:]


class OutboxBackend(BaseBackend):
    name = "outbox"
    uses_shared_content = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.folder = Path(settings.outbox_dir)
        try:
            self.domain = domain_of(settings.clinic.from_email)
        except UnsafeHeaderError as exc:
            raise ConfigurationError(f"clinic from_email: {exc}") from None
        self._ready = False
        self._rows: list[dict] = []
        self._index_stale = False
        self._index_built_at = float("-inf")

    def open(self) -> None:
        if self._ready:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"outbox folder {self.folder}: cannot create it: {exc}") from exc
        if not os.access(self.folder, os.W_OK):
            raise ConfigurationError(f"outbox folder {self.folder}: not writable")
        self._ready = True

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        self.open()
        self._rows = []
        results = super().send_batch(messages)
        if self._rows:
            rows, self._rows = self._rows, []
            rebuild = time.monotonic() - self._index_built_at >= INDEX_REFRESH_SECONDS
            self._update_index(rows, rebuild=rebuild)
        return results

    def close(self) -> None:
        if self._index_stale:
            self._update_index([], rebuild=True)

    def send_group(self, group: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = []
        folder = os.fspath(self.folder)
        for msg in group:
            built = build_message(msg, domain=self.domain)
            stem = str(int(msg.delivery_id)) if msg.delivery_id != ONE_OFF_ID else one_off_stem()
            base = os.path.join(folder, stem)
            try:
                # The BOM makes browsers read the file as UTF-8 even if the HTML names no charset.
                write_atomic(base + ".html", ("\ufeff" + msg.html).encode("utf-8", "replace"))
                write_atomic(base + ".eml", built.raw)
            except OSError as exc:
                # Disk full (ENOSPC), folder removed, read-only: the outbox is unwell, not this
                # recipient. Server-level: the rows stay due and the breaker holds the backend.
                raise BackendUnavailable(f"outbox: cannot write {stem}.eml in {self.folder}: {exc}") from exc
            self._rows.append({
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "delivery_id": int(msg.delivery_id),
                "file": stem,
                "to": f"{msg.to_name} <{built.recipient}>" if msg.to_name else built.recipient,
                "subject": msg.subject,
                "message_id": built.message_id,
            })
            results.append(SendResult(delivery_id=msg.delivery_id, ok=True, message_id=built.message_id))
        return results

    # -- index
    @contextmanager
    def _index_lock(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        fd = os.open(self.folder / ".index.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _update_index(self, rows: list[dict], *, rebuild: bool) -> None:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        self._index_stale = True
        try:
            with self._index_lock():
                if lines:
                    fd = os.open(self.folder / "index.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                    try:
                        os.write(fd, lines)
                    finally:
                        os.close(fd)
                if rebuild:
                    tail = read_tail_lines(self.folder / "index.jsonl", INDEX_ROWS * 2)
                    write_atomic(self.folder / "index.html", render_index(tail).encode("utf-8"))
                    self._index_stale = False
                    self._index_built_at = time.monotonic()
        except OSError as exc:
            # The messages themselves are written and their results are true; a stale index is
            # not worth failing (and so resending) them for.
            log.warning("outbox %s: could not update index.html: %s", self.folder, exc)


_STEM = re.compile(r"-?\d+|test-\d{8}T\d{6}-[0-9a-f]{8}")  # what send_group names files: safe in a link


def render_index(lines: list[bytes]) -> str:
    """index.html from index.jsonl lines: newest first, one row per delivery (a resend replaces)."""
    latest: dict[str, dict] = {}  # insertion order = order of the newest write per file
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash mid-append: skip it, the files are still there
        if not isinstance(row, dict) or not isinstance(row.get("delivery_id"), int):
            continue
        stem = row.get("file")  # older lines have none: their file is named by the delivery id
        stem = stem if isinstance(stem, str) and _STEM.fullmatch(stem) else str(row["delivery_id"])
        latest.pop(stem, None)
        latest[stem] = row
    rows = list(latest.items())[::-1][:INDEX_ROWS]
    esc = html.escape
    body = "\n".join(
        f'<tr><td>{esc(str(r.get("time", "")))}</td><td>{esc(str(r.get("to", "")))}</td>'
        f'<td><a href="{stem}.html">{esc(str(r.get("subject", "")))}</a></td>'
        f'<td><a href="{stem}.eml">.eml</a></td></tr>'
        for stem, r in rows
    )
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>drip outbox</title>\n"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}"
        "td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}</style></head>\n"
        f"<body><h1>drip outbox</h1><p>Newest first; the latest {INDEX_ROWS} deliveries are listed, "
        "every message's files stay in this folder.</p>\n"
        "<table><thead><tr><th>Time (UTC)</th><th>To</th><th>Subject</th><th>Source</th></tr></thead>"
        f"<tbody>\n{body}\n</tbody></table></body></html>\n"
    )

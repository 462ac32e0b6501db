"""OutboxBackend: real files in a temp folder, read back with the stdlib parser."""

from __future__ import annotations

import fcntl
import json
import logging
import multiprocessing
import os
import threading
import time
from email import policy
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path

import pytest

from drip.errors import ConfigurationError
from delivery.backends import get_backend
from delivery.backends import outbox as outbox_module
from delivery.backends.outbox import OutboxBackend, read_tail_lines, render_index
from delivery.types import OutgoingMessage


def message(delivery_id: int, subject: str = "Release of Endorphins", **changes) -> OutgoingMessage:
    values = dict(
        delivery_id=delivery_id,
        to_email=f"p{delivery_id}@example.org",
        to_name="Ana Pérez",
        subject=subject,
        html=f"<!doctype html><html><body><p>Hola {delivery_id} — ☯</p></body></html>",
        text=f"Hola {delivery_id}\n",
        from_email="care@riverside-clinic.example",
        from_name="Riverside Acupuncture",
        reply_to="",
        unsubscribe_url=f"https://clinic.test/u/t{delivery_id}",
    )
    values.update(changes)
    return OutgoingMessage(**values)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.cells: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs)["href"])

    def handle_data(self, data):
        if data.strip():
            self.cells.append(data.strip())


def index_links(folder: Path) -> list[str]:
    parser = _Links()
    parser.feed((folder / "index.html").read_text(encoding="utf-8"))
    return [link for link in parser.links if link.endswith(".html")]


def test_default_backend_is_the_outbox(settings):
    assert isinstance(get_backend(settings), OutboxBackend)


def test_writes_eml_and_html_per_message(settings):
    with OutboxBackend(settings) as backend:
        results = backend.send_batch([message(1), message(2)])
    assert [r.ok for r in results] == [True, True]
    folder = settings.outbox_dir
    parsed = BytesParser(policy=policy.default).parsebytes((folder / "1.eml").read_bytes())
    assert parsed["Message-ID"] == results[0].message_id
    assert parsed["X-Drip-Delivery-Id"] == "1"
    assert parsed["To"].addresses[0].addr_spec == "p1@example.org"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    # The .html is the body as sent, UTF-8 with a BOM so a browser never guesses the charset.
    page = (folder / "2.html").read_bytes()
    assert page.startswith(b"\xef\xbb\xbf")
    assert page[3:].decode("utf-8") == message(2).html
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "1.eml", "1.html", "2.eml", "2.html", "index.html", "index.jsonl"]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_resend_of_a_delivery_overwrites_instead_of_duplicating(settings, monkeypatch):
    monkeypatch.setattr(outbox_module, "INDEX_REFRESH_SECONDS", 0.0)  # rebuild after every batch
    backend = OutboxBackend(settings)
    first = backend.send_batch([message(5, "First try")])[0]
    second = backend.send_batch([message(5, "Second try")])[0]
    assert first.message_id != second.message_id
    folder = settings.outbox_dir
    assert sorted(p.name for p in folder.glob("5.*")) == ["5.eml", "5.html"]
    parsed = BytesParser(policy=policy.default).parsebytes((folder / "5.eml").read_bytes())
    assert parsed["Subject"] == "Second try" and parsed["Message-ID"] == second.message_id
    assert index_links(folder) == ["5.html"]  # listed once
    assert "Second try" in (folder / "index.html").read_text() and "First try" not in (folder / "index.html").read_text()
    backend.send_batch([message(6)])
    backend.send_batch([message(5, "Third try")])
    assert index_links(folder) == ["5.html", "6.html"]  # the resend is the newest row


def test_index_lists_every_message_across_batches_newest_first(settings, monkeypatch):
    monkeypatch.setattr(outbox_module, "INDEX_REFRESH_SECONDS", 3600.0)
    backend = OutboxBackend(settings)
    for start in (1, 4, 7):
        backend.send_batch([message(i, f"Subject {i}") for i in range(start, start + 3)])
        # the first batch builds the index; later ones within the refresh interval only log
        assert index_links(settings.outbox_dir) == ["3.html", "2.html", "1.html"]
    backend.close()  # brings the index up to date
    assert index_links(settings.outbox_dir) == [f"{i}.html" for i in range(9, 0, -1)]
    assert len((settings.outbox_dir / "index.jsonl").read_text().splitlines()) == 9


def _worker(outbox_dir: str, start: int) -> None:
    from drip.config import Settings

    with OutboxBackend(Settings(outbox_dir=Path(outbox_dir))) as backend:
        for batch in range(5):
            first = start + batch * 10
            backend.send_batch([message(i) for i in range(first, first + 10)])


def test_index_stays_complete_with_several_processes(settings):
    ctx = multiprocessing.get_context("fork")
    # Ledger ids start at 1 (0 is a one-off test email, with a file name of its own).
    procs = [ctx.Process(target=_worker, args=(str(settings.outbox_dir), n * 1000 + 1)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    # Whichever process rebuilt the index last (each does on close) read the log after every append.
    expected = {f"{n * 1000 + i}.html" for n in range(3) for i in range(1, 51)}
    assert set(index_links(settings.outbox_dir)) == expected
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 150


def test_index_update_waits_for_the_lock_another_process_holds(settings):
    backend = OutboxBackend(settings)
    backend.open()
    folder = settings.outbox_dir
    fd = os.open(folder / ".index.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a separate open file: conflicts even within one process
    try:
        sender = threading.Thread(target=backend.send_batch, args=([message(1)],))
        sender.start()
        for _ in range(200):  # bounded: up to ~10 s for the message files
            if (folder / "1.eml").exists():
                break
            time.sleep(0.05)
        sender.join(0.3)
        assert sender.is_alive() and not (folder / "index.html").exists()  # blocked on the lock
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    sender.join(10)
    assert index_links(folder) == ["1.html"]


def test_index_escapes_what_it_shows(settings):
    OutboxBackend(settings).send_batch([message(1, "<script>alert(1)</script>", to_name="<b>Ana</b>")])
    page = (settings.outbox_dir / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;Ana&lt;/b&gt;" in page


def test_index_shows_only_the_newest_rows(monkeypatch):
    monkeypatch.setattr(outbox_module, "INDEX_ROWS", 3)
    lines = [json.dumps({"delivery_id": i, "subject": f"s{i}"}).encode() for i in range(10)]
    lines.insert(4, b'{"delivery_id": 99, "subj')  # a line cut by a crash mid-append
    lines.append(b"[1, 2]")
    parser = _Links()
    parser.feed(render_index(lines))
    assert [link for link in parser.links if link.endswith(".html")] == ["9.html", "8.html", "7.html"]


def test_read_tail_lines_reads_only_complete_lines_from_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(outbox_module, "_TAIL_BLOCK", 16)  # force several backward reads
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(f"line-{i:03d}\n".encode() for i in range(50)))
    assert read_tail_lines(path, 4) == [b"line-046", b"line-047", b"line-048", b"line-049"]
    assert len(read_tail_lines(path, 500)) == 50
    assert read_tail_lines(tmp_path / "missing", 3) == []


def test_a_failed_write_leaves_the_old_file_whole_and_is_transient(settings, monkeypatch):
    backend = OutboxBackend(settings)
    backend.send_batch([message(1, "Old")])
    old = (settings.outbox_dir / "1.eml").read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    (result,) = backend.send_batch([message(1, "New")])
    assert not result.ok and result.transient and "No space left" in result.error
    assert (settings.outbox_dir / "1.eml").read_bytes() == old
    assert not [p for p in settings.outbox_dir.iterdir() if p.name.endswith(".tmp")]


def test_unsafe_message_fails_alone(settings):
    with OutboxBackend(settings) as backend:
        bad, good = backend.send_batch([message(1, to_email="x@y\r\nBcc: z@evil.example"), message(2)])
    assert not bad.ok and not bad.transient and good.ok
    assert not (settings.outbox_dir / "1.eml").exists()
    assert index_links(settings.outbox_dir) == ["2.html"]


def test_outbox_folder_that_cannot_be_created_is_a_configuration_error(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigurationError, match="outbox folder"):
        OutboxBackend(settings.with_(outbox_dir=blocker / "outbox")).send_batch([message(1)])


def test_index_failure_is_logged_and_does_not_fail_sent_messages(settings, caplog):
    (settings.outbox_dir / "index.html").mkdir(parents=True)  # os.replace onto a folder fails
    with caplog.at_level(logging.WARNING, logger="drip.outbox"):
        (result,) = OutboxBackend(settings).send_batch([message(1)])
    assert result.ok and (settings.outbox_dir / "1.eml").exists()
    assert "could not update index.html" in caplog.text


def test_one_off_emails_each_get_a_file_of_their_own(settings):
    """Delivery id 0 is a staff test email, not a ledger row: ten tests are ten files, all listed."""
    with OutboxBackend(settings) as backend:
        for n in range(10):
            [result] = backend.send_batch([message(0, subject=f"[TEST] take {n}")])
            assert result.ok
        backend.send_batch([message(7)])
        backend.send_batch([message(7)])  # a resend of a ledger row still overwrites its files
    folder = settings.outbox_dir
    tests = sorted(folder.glob("test-*.eml"))
    assert len(tests) == 10 and not (folder / "0.eml").exists()
    assert len(list(folder.glob("7.eml"))) == 1
    subjects = {BytesParser(policy=policy.default).parsebytes(p.read_bytes())["Subject"] for p in tests}
    assert len(subjects) == 10
    links = index_links(folder)
    assert sorted(link for link in links if link.startswith("test-")) == sorted(p.with_suffix(".html").name for p in tests)
    assert links.count("7.html") == 1

"""Where bounce reports are read from: a maildir folder or an IMAP mailbox. Each source lists
the messages not processed yet and marks one processed once its report is recorded, so a
message is not read twice (and if the mark is lost in a crash, the event store dedupes it).

- Maildir: a processed message moves from new/ (or cur/) to cur/ with the Seen flag
  (`<name>:2,S`), as a mail client would; messages already Seen are skipped.
- IMAP (stdlib imaplib): IMAPS (993) or STARTTLS (143), verified against the system CAs (or a
  context the caller passes); plain only to a loopback server. Unseen messages are fetched with
  BODY.PEEK[] (reading does not mark them) and flagged \\Seen after processing.
"""

from __future__ import annotations

import imaplib
import os
import ssl
from pathlib import Path
from typing import Iterator, Protocol

from drip.config import Settings
from drip.errors import ConfigurationError


class BounceSource(Protocol):
    name: str

    def messages(self) -> Iterator[tuple[str, bytes]]: ...

    def done(self, key: str) -> None: ...

    def close(self) -> None: ...


def _seen(name: str) -> bool:
    _, sep, info = name.partition(":2,")
    return bool(sep) and "S" in info


class MaildirSource:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"maildir {self.path}"
        missing = [d for d in ("new", "cur") if not (self.path / d).is_dir()]
        if missing:
            raise ConfigurationError(f"{self.path}: not a maildir (no {'/'.join(missing)}/ folder)")
        self._where: dict[str, Path] = {}

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for sub in ("new", "cur"):
            for entry in sorted(os.listdir(self.path / sub)):
                if entry.startswith(".") or (sub == "cur" and _seen(entry)):
                    continue
                file = self.path / sub / entry
                try:
                    data = file.read_bytes()
                except FileNotFoundError:  # taken by another reader meanwhile
                    continue
                key = entry.partition(":2,")[0]
                self._where[key] = file
                yield key, data

    def done(self, key: str) -> None:
        file = self._where.pop(key)
        base, sep, info = file.name.partition(":2,")
        flags = "".join(sorted(set(info + "S"))) if sep else "S"
        try:
            os.replace(file, self.path / "cur" / f"{base}:2,{flags}")
        except FileNotFoundError:
            pass

    def close(self) -> None:
        self._where.clear()


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ImapSource:
    def __init__(self, settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        s = settings
        if not s.bounce_imap_user or not s.bounce_imap_password:
            raise ConfigurationError("DRIP_BOUNCE_IMAP_HOST is set: DRIP_BOUNCE_IMAP_USER and "
                                     "DRIP_BOUNCE_IMAP_PASSWORD (environment) are needed too")
        if s.bounce_imap_security == "plain" and not _is_loopback(s.bounce_imap_host):
            raise ConfigurationError(f"refusing to send the IMAP password unencrypted to {s.bounce_imap_host}; "
                                     "set DRIP_BOUNCE_IMAP_SECURITY=ssl or starttls")
        self.security = s.bounce_imap_security
        self.host = s.bounce_imap_host
        self.port = s.bounce_imap_port or (993 if self.security == "ssl" else 143)
        self.folder = s.bounce_imap_folder or "INBOX"
        self.name = f"imap {self.host}:{self.port}/{self.folder}"
        context = ssl_context or ssl.create_default_context()
        try:
            if self.security == "ssl":
                conn = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=30)
            else:
                conn = imaplib.IMAP4(self.host, self.port, timeout=30)
                if self.security == "starttls":
                    conn.starttls(ssl_context=context)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ConnectionError(f"bounce mailbox {self.name}: cannot connect: {exc}") from exc
        try:
            conn.login(s.bounce_imap_user, s.bounce_imap_password)
            typ, data = conn.select(_quote(self.folder))
            if typ != "OK":
                raise imaplib.IMAP4.error(f"SELECT {self.folder}: {data!r}")
        except imaplib.IMAP4.error as exc:
            conn.shutdown()
            raise ConnectionError(f"bounce mailbox {self.name}: {exc}") from exc
        self.conn = conn

    def messages(self) -> Iterator[tuple[str, bytes]]:
        try:
            yield from self._messages()
        except (OSError, imaplib.IMAP4.error) as exc:  # a dropped connection: tried again at the next poll
            raise ConnectionError(f"bounce mailbox {self.name}: {exc!r}") from exc

    def _messages(self) -> Iterator[tuple[str, bytes]]:
        typ, data = self.conn.uid("SEARCH", None, "UNSEEN")
        if typ != "OK":
            raise ConnectionError(f"bounce mailbox {self.name}: SEARCH failed: {data!r}")
        for uid in (data[0] or b"").split():
            typ, parts = self.conn.uid("FETCH", uid, "(BODY.PEEK[])")
            if typ != "OK":
                continue
            body = next((p[1] for p in parts if isinstance(p, tuple) and len(p) == 2), None)
            if body is not None:
                yield uid.decode("ascii"), body

    def done(self, key: str) -> None:
        try:
            self.conn.uid("STORE", key, "+FLAGS.SILENT", r"(\Seen)")
        except (OSError, imaplib.IMAP4.error) as exc:  # recorded already: a re-read is deduplicated
            raise ConnectionError(f"bounce mailbox {self.name}: flagging {key} failed: {exc!r}") from exc

    def close(self) -> None:
        try:
            self.conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sources_for(settings: Settings, maildir: Path | None = None,
                ssl_context: ssl.SSLContext | None = None) -> list[BounceSource]:
    """The configured bounce mailboxes (a `--maildir` given by hand replaces the settings)."""
    if maildir is not None:
        return [MaildirSource(maildir)]
    out: list[BounceSource] = []
    if settings.bounce_maildir:
        out.append(MaildirSource(Path(settings.bounce_maildir)))
    if settings.bounce_imap_host:
        out.append(ImapSource(settings, ssl_context=ssl_context))
    return out


def configured(settings: Settings) -> bool:
    return bool(settings.bounce_maildir or settings.bounce_imap_host)

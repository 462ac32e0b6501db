"""CSV import of subscribers: streamed, in bulk, in one transaction.

The file
    UTF-8 (with or without a BOM), comma-separated, first row a header. Columns, any case, any
    order: `email` (required; also `e-mail`, `email address`), `name`, `tz` (or `timezone`,
    `time zone`), `language` (or `lang`: en, es, "es-MX", "Spanish"; empty keeps the stored one), `tags` (several separated by ";" or "|", or a quoted comma list as Mailchimp
    exports it: `"Back pain","New patients"`). A column named like a defined custom attribute
    (subscribers/attributes.py; "First Visit" or `first_visit`) sets it, checked against its
    type; an empty cell keeps the stored value. Other columns are ignored and listed in the
    report. Blank lines and rows with every field blank are passed over.

Mailchimp's audience export
    `Email Address`, `First Name` + `Last Name` (joined into the name), `TAGS`, `TIMEZONE` are
    read; `OPTIN_TIME` (UTC, or `CONFIRM_TIME`) and `CONFIRM_IP` (or `OPTIN_IP`) become a new
    subscriber's consent record (time and IP), kept as the evidence of the opt-in.

Bad rows
    A row is bad when its address is missing or invalid, its zone is not an IANA zone, a tag is
    unusable, it has a different number of fields than the header, or it is not valid CSV (e.g. a
    quote left open: a line break inside a known field is reported, not silently joined). Each
    problem is reported as (line, field, message); `line` is the row's first physical line.
    - mode="skip" (default): bad rows are reported and skipped, good rows are imported.
    - mode="refuse" (`drip subscribers import --strict`): the whole file is checked first; if any
      row is bad nothing is imported and the report says `refused` (the CLI exits 2).
    A file that cannot be read at all (missing, not UTF-8, no header, no `email` column) is an
    InputError naming the file and line, and nothing is written.

Duplicates
    An address is matched case-insensitively, within the file and against the database. A row
    for a known address updates it: non-empty name / zone replace the stored ones (so a later row
    wins), empty ones keep them, tags are added, status is left alone (an unsubscribed patient is
    not resubscribed by an import). Repeats inside the file are counted as `duplicates`.

Memory and speed
    The file is read line by line and written in chunks of 5,000 rows (one bulk ON CONFLICT
    upsert + one lookup per chunk), so a million rows run in constant memory; only the first
    1,000 row errors are kept (all are counted). Everything happens in one transaction, so an
    unreadable line halfway through leaves the database as it was. On SQLite that transaction
    holds the write lock for the import's duration (readers carry on: WAL).
"""

from __future__ import annotations

import codecs
import csv
import ipaddress
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, BinaryIO, Callable, Iterator, Literal

from sqlalchemy import Table, case, column, func, or_, select
from sqlalchemy import table as sql_table
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.orm import Session, sessionmaker

from drip.errors import InputError
from drip.i18n import normalize_language
from drip.models import Subscriber, SubscriberStatus, utcnow
from subscribers.attributes import definitions, parse_value, write_values
from drip.runtime import Runtime
from subscribers.suppression import erased_keys
from subscribers.service import (
    clean_name,
    clean_tag,
    dialect_insert,
    link_tags,
    normalize_email,
    validate_zone,
)

Mode = Literal["skip", "refuse"]
Progress = Callable[[str, int, int], None]  # (phase "checking" | "importing", bytes read, file size)

CHUNK_ROWS = 5000
MAX_KEPT_ERRORS = 1000
MAX_LINE_BYTES = 1 << 20  # a "line" longer than 1 MB is not a subscriber row: stop before reading it all
TAG_SEPARATORS = str.maketrans({"|": ";"})

COLUMNS = {
    "email": "email", "e-mail": "email", "email address": "email", "email_address": "email",
    "name": "name",
    "tz": "tz", "timezone": "tz", "time zone": "tz", "time_zone": "tz",
    "tags": "tags", "tag": "tags",
    "language": "language", "lang": "language",
    "first name": "first_name", "first_name": "first_name", "fname": "first_name",
    "last name": "last_name", "last_name": "last_name", "lname": "last_name",
    "optin_time": "optin_time", "confirm_time": "confirm_time",
    "confirm_ip": "confirm_ip", "optin_ip": "optin_ip",
}
_CONSENT_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@dataclass(frozen=True)
class RowError:
    line: int
    field: str  # email | name | tz | language | tags | row
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass
class ImportReport:
    path: str
    rows: int = 0  # data rows read (blank rows not counted)
    created: int = 0
    updated: int = 0  # rows matching a subscriber that existed before the import
    duplicates: int = 0  # rows repeating an address seen earlier in the file (merged into it)
    skipped: int = 0  # bad rows
    tagged: int = 0  # new (subscriber, tag) links
    enrolled: int = 0  # campaign enrollments made through tags
    attributes: int = 0  # attribute keys changed (per subscriber and key)
    errors: list[RowError] = field(default_factory=list)  # the first MAX_KEPT_ERRORS problems
    error_count: int = 0  # all problems (a row can have several)
    ignored_columns: tuple[str, ...] = ()
    refused: bool = False  # mode="refuse" and some row was bad: nothing was imported

    @property
    def imported(self) -> int:
        return 0 if self.refused else self.created + self.updated + self.duplicates

    def add_error(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(error)


@dataclass(frozen=True)
class _Row:
    line: int
    email: str
    key: str
    name: str
    tz: str | None
    tags: tuple[str, ...]
    attrs: tuple[tuple[int, str, str], ...] = ()  # (attribute id, key, canonical value)
    consent_at: datetime | None = None
    consent_ip: str | None = None
    language: str | None = None  # drip/i18n.py code; None keeps the stored one


class _Refused(Exception):
    """Rolls back the import transaction when mode="refuse" finds a bad row while writing."""


def import_csv(
    target: Runtime | sessionmaker[Session],
    path: str | os.PathLike[str],
    *,
    mode: Mode = "skip",
    tags: tuple[str, ...] | list[str] = (),
    progress: Progress | None = None,
    now: datetime | None = None,
    source: str = "import",
    clinic_tz: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    enroll_in: str | None = None,
) -> ImportReport:
    """Import subscribers from a CSV file (see the module docstring for the rules).

    `target` is a Runtime or a sessionmaker. `tags` are added to every imported row. `enroll_in`
    (a published campaign's slug) enrolls every imported row that can be (campaigns/bulk.py).
    """
    if mode not in ("skip", "refuse"):
        raise ValueError(f"mode must be 'skip' or 'refuse', not {mode!r}")
    sessions: sessionmaker[Session] = getattr(target, "sessions", target)
    settings = getattr(target, "settings", None)
    clinic_tz = clinic_tz or (settings.clinic.timezone if settings is not None else "UTC")
    try:
        extra_tags = tuple(dict.fromkeys(clean_tag(t) for t in tags))
    except InputError as exc:
        raise InputError(str(exc).removeprefix("tags: "), where="--tag") from None
    now = now or utcnow()
    chunk_rows = max(1, chunk_rows)
    with sessions() as session:
        if enroll_in:
            from campaigns.service import get_campaign

            campaign = get_campaign(session, enroll_in)
            if campaign.status != "published":
                raise InputError(f"campaign {enroll_in!r} is {campaign.status}, not published", where="--enroll")
        attribute_defs = {d.key: _Def(d.id, d.key, d.type, tuple(d.choices or ())) for d in definitions(session).values()}

    if mode == "refuse":
        check = ImportReport(path=str(path))
        for _ in _chunks(path, check, progress, "checking", chunk_rows, attribute_defs):
            pass
        if check.error_count:
            check.refused = True
            return check

    report = ImportReport(path=str(path))
    try:
        with sessions() as session, session.begin():
            watermark = session.scalar(select(func.max(Subscriber.id))) or 0
            for rows in _chunks(path, report, progress, "importing", chunk_rows, attribute_defs):
                if mode == "refuse" and report.error_count:  # the file changed since it was checked
                    raise _Refused
                _write(session, rows, report, watermark, extra_tags, now, source, clinic_tz, enroll_in)
            if mode == "refuse" and report.error_count:
                raise _Refused
    except _Refused:
        report.refused = True
        report.created = report.updated = report.duplicates = report.tagged = report.enrolled = 0
        report.attributes = 0
    return report


# ---------------------------------------------------------------------------------------------
# reading


def _open(path: str | os.PathLike[str]) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError("no such file", where=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a CSV file", where=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", where=str(path)) from None


def _lines(raw: BinaryIO, name: str, read: list[int]) -> Iterator[str]:
    """Decoded physical lines. Decoding per line puts the line number on a non-UTF-8 byte."""
    number = 0
    while True:
        chunk = raw.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        number += 1
        read[0] += len(chunk)
        if len(chunk) > MAX_LINE_BYTES:
            raise InputError(f"line longer than {MAX_LINE_BYTES:,} bytes: not a subscriber CSV", where=f"{name}:{number}")
        if number == 1 and chunk.startswith(codecs.BOM_UTF8):
            chunk = chunk[len(codecs.BOM_UTF8):]
        try:
            yield chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"not UTF-8 text (byte 0x{chunk[exc.start]:02x} at column {exc.start + 1}); save the file as CSV UTF-8",
                where=f"{name}:{number}",
            ) from None


@dataclass(frozen=True)
class _Def:
    """A custom attribute's definition, detached from the session (the check phase has none)."""

    id: int
    key: str
    type: str
    choices: tuple[str, ...]


def _attribute_key(label: str) -> str:
    return "_".join(label.replace("-", " ").split())


def _header(reader, name: str, attribute_defs: dict[str, "_Def"] | None = None) -> tuple[dict[str, int], tuple[str, ...], int]:
    """(column role -> index, ignored column names, field count). InputError when there is no usable header."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            raise InputError("file is empty: a header row with an 'email' column is required", where=name) from None
        except csv.Error as exc:
            raise InputError(f"not a CSV file: {exc}", where=f"{name}:{reader.line_num}") from None
        if any(c.strip() for c in cells):
            break
    roles: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        label = " ".join(cell.strip().lower().split())
        role = COLUMNS.get(label)
        if role is None and attribute_defs and _attribute_key(label) in attribute_defs:
            role = "attr:" + _attribute_key(label)
        if role is None:
            if label:
                ignored.append(cell.strip())
            continue
        if role in roles:
            raise InputError(f"two columns mean {role!r}: {cells[roles[role]]!r} and {cell!r}", where=f"{name}:{reader.line_num}")
        roles[role] = index
    if "email" not in roles:
        found = ", ".join(repr(c) for c in cells[:6])
        hint = ""
        if len(cells) == 1 and (";" in cells[0] or "\t" in cells[0]):
            hint = "; columns must be separated by commas"
        elif any("@" in c for c in cells):
            hint = "; the first row must be a header naming the columns (email, name, tz, tags)"
        raise InputError(f"no 'email' column in the header (found {found}){hint}", where=f"{name}:{reader.line_num}")
    return roles, tuple(ignored), len(cells)


def _chunks(
    path: str | os.PathLike[str], report: ImportReport, progress: Progress | None, phase: str, chunk_rows: int,
    attribute_defs: dict[str, "_Def"] | None = None,
) -> Iterator[list[_Row]]:
    """Valid rows in chunks; bad rows go to the report. Constant memory whatever the file size."""
    name = str(path)
    with _open(path) as raw:
        total = os.fstat(raw.fileno()).st_size
        read = [0]
        reader = csv.reader(_lines(raw, name, read), strict=True)
        roles, report.ignored_columns, width = _header(reader, name, attribute_defs)
        chunk: list[_Row] = []
        last_line = reader.line_num
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                report.rows += 1
                report.skipped += 1
                report.add_error(RowError(last_line + 1, "row", f"not valid CSV: {exc}"))
                last_line = reader.line_num
                continue
            start, last_line = last_line + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            report.rows += 1
            row = _parse(cells, start, last_line, roles, width, report, attribute_defs or {})
            if row is None:
                report.skipped += 1
                continue
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
                if progress:
                    progress(phase, read[0], total)
        if chunk:
            yield chunk
        if progress:
            progress(phase, total, total)


def _split_tags(cell: str) -> list[str]:
    """`a; b | c`, or Mailchimp's quoted comma list `"Back pain","New patients"` (one cell)."""
    if '"' in cell:
        return next(csv.reader([cell.strip()], skipinitialspace=True), [])
    return cell.translate(TAG_SEPARATORS).split(";")


def _consent_time(text: str) -> datetime:
    text = text.strip()
    for fmt in _CONSENT_TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise InputError(f"{text[:40]!r} is not a time (YYYY-MM-DD HH:MM:SS, UTC)")


def _consent_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise InputError(f"{text.strip()[:40]!r} is not an IP address") from None


def _parse(cells: list[str], start: int, end: int, roles: dict[str, int], width: int, report: ImportReport,
           attribute_defs: dict[str, "_Def"] | None = None) -> _Row | None:
    if len(cells) != width:
        report.add_error(RowError(start, "row", f"expected {width} fields like the header, found {len(cells)}"))
        return None
    bad = False
    if end > start:
        for role, index in roles.items():
            if "\n" in cells[index] or "\r" in cells[index]:
                report.add_error(RowError(start, role, f"line break inside the field (lines {start}-{end}): a quote left open?"))
                bad = True
        if bad:
            return None

    def field(role: str, parse: Callable[[str], Any], default: Any) -> Any:
        """The cell of `role` parsed, or `default` when the column is absent or the cell is refused
        (the refusal is reported, naming the row and the field)."""
        nonlocal bad
        if role not in roles:
            return default
        try:
            return parse(cells[roles[role]])
        except InputError as exc:
            report.add_error(RowError(start, role, _reason(exc)))
            bad = True
            return default

    email, key = field("email", normalize_email, ("", ""))
    zone = field("tz", validate_zone, None)
    language = field("language", normalize_language, None)
    tags: tuple[str, ...] = field(
        "tags", lambda cell: tuple(dict.fromkeys(clean_tag(t) for t in _split_tags(cell) if t.strip())), ())
    attrs: list[tuple[int, str, str]] = []
    consent_at = consent_ip = None
    for role, index in roles.items():
        cell = cells[index]
        if not cell.strip():
            continue
        try:
            if role.startswith("attr:"):
                d = (attribute_defs or {})[role[5:]]
                value = parse_value(d, cell)  # type: ignore[arg-type]
                if value is not None:
                    attrs.append((d.id, d.key, value))
            elif role == "optin_time" or (role == "confirm_time" and consent_at is None):
                consent_at = _consent_time(cell)
            elif role == "confirm_ip" or (role == "optin_ip" and consent_ip is None):
                consent_ip = _consent_ip(cell)
        except InputError as exc:
            report.add_error(RowError(start, role.removeprefix("attr:"), _reason(exc)))
            bad = True
    if bad:
        return None
    if "name" in roles:
        name = clean_name(cells[roles["name"]])
    else:
        name = clean_name(" ".join(cells[roles[r]] for r in ("first_name", "last_name") if r in roles))
    return _Row(start, email, key, name, zone, tags, tuple(attrs), consent_at, consent_ip, language)


def _reason(exc: InputError) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if exc.where and text.startswith(f"{exc.where}: ") else text


# ---------------------------------------------------------------------------------------------
# writing


def _ids(session: Session, keys: list[str]) -> dict[str, int]:
    """email_key -> subscriber id for the keys that exist (one indexed IN query per chunk)."""
    rows = session.execute(select(Subscriber.email_key, Subscriber.id).where(Subscriber.email_key.in_(keys)))
    return {key: sid for key, sid in rows}


@lru_cache(maxsize=None)
def _untyped(table: Table) -> TableClause:
    return sql_table(table.name, *(column(c.name) for c in table.c))


def _write(
    session: Session,
    rows: list[_Row],
    report: ImportReport,
    watermark: int,
    extra_tags: tuple[str, ...],
    now: datetime,
    source: str,
    clinic_tz: str,
    enroll_in: str | None = None,
) -> None:
    merged: dict[str, _Row] = {}
    for row in rows:
        before = merged.get(row.key)
        if before is not None:
            report.duplicates += 1
            row = _Row(
                row.line,
                before.email,
                row.key,
                row.name or before.name,
                row.tz or before.tz,
                tuple(dict.fromkeys(before.tags + row.tags)),
                before.attrs + row.attrs,  # later values win when written
                row.consent_at or before.consent_at,
                row.consent_ip or before.consent_ip,
                row.language or before.language,
            )
        merged[row.key] = row

    table = Subscriber.__table__
    keys = list(merged)
    known = _ids(session, keys)
    # An erased patient is never re-added (subscribers/erasure.py): the row is refused and named.
    for key in erased_keys(session, [k for k in keys if k not in known]):
        row = merged.pop(key)
        report.skipped += 1
        report.add_error(RowError(row.line, "email", "this patient's data was erased at their request; not re-added"))
    keys = list(merged)
    for key in keys:
        sid = known.get(key)
        if sid is None:
            report.created += 1
        elif sid > watermark:
            report.duplicates += 1  # first seen in an earlier chunk of this file
        else:
            report.updated += 1

    # The same table without column types: the constant values (status, consent, timestamps) are
    # converted for the driver once per chunk instead of once per row by UTCDateTime.
    plain = _untyped(table)
    insert = dialect_insert(session, plain)
    excluded, current = insert.excluded, plain.c
    upsert = insert.on_conflict_do_update(
        index_elements=["email_key"],
        set_={
            # an empty name or zone in the file never wipes a known one
            "name": case((excluded.name != "", excluded.name), else_=current.name),
            "tz": func.coalesce(excluded.tz, current.tz),
            "language": func.coalesce(excluded.language, current.language),
            "updated_at": case(
                (or_(excluded.name != "", excluded.tz.is_not(None), excluded.language.is_not(None)),
                 excluded.updated_at), else_=current.updated_at
            ),
        },
    )
    dialect = session.get_bind().dialect
    to_db = table.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    stamp = to_db(now) if to_db else now
    constant = {
        "status": SubscriberStatus.ACTIVE.value, "consent_source": source[:64],
        "consent_at": stamp, "created_at": stamp, "updated_at": stamp,
    }
    session.execute(
        upsert,
        [{"email": r.email, "email_key": r.key, "name": r.name, "tz": r.tz, "language": r.language, **constant,
          "consent_at": to_db(r.consent_at) if (r.consent_at and to_db) else (r.consent_at or stamp),
          "consent_ip": r.consent_ip}
         for r in merged.values()],
    )
    from webhooks.outbox import emit

    def created() -> list[dict]:  # only when an endpoint wants subscriber.subscribed
        new = [k for k in keys if k not in known]
        ids = _ids(session, new) if new else {}
        known.update(ids)
        return [{"subscriber_id": ids[k], "status": SubscriberStatus.ACTIVE.value, "source": source[:64]}
                for k in new if k in ids]

    emit(session, "subscriber.subscribed", created, now)

    with_attrs = [r for r in merged.values() if r.attrs]
    if with_attrs:
        missing = [r.key for r in with_attrs if r.key not in known]
        if missing:
            known.update(_ids(session, missing))
        values = {known[r.key]: {aid: (k, v) for aid, k, v in r.attrs} for r in with_attrs}
        report.attributes += sum(len(ids) for ids in write_values(session, values, now, clinic_tz=clinic_tz).values())

    if enroll_in:
        from campaigns.enrollment import enroll_many
        from campaigns.service import get_campaign

        missing = [k for k in keys if k not in known]
        if missing:
            known.update(_ids(session, missing))
        report.enrolled += enroll_many(session, sorted({known[k] for k in keys}), get_campaign(session, enroll_in),
                                       now, clinic_tz=clinic_tz, source=source).enrolled

    tagged = [r for r in merged.values() if r.tags or extra_tags]
    if tagged:
        missing = [r.key for r in tagged if r.key not in known]
        if missing:
            known.update(_ids(session, missing))
        pairs = [(known[r.key], t) for r in tagged for t in dict.fromkeys(r.tags + extra_tags)]
        outcome = link_tags(session, pairs, now, clinic_tz=clinic_tz)
        report.tagged += outcome.linked
        report.enrolled += outcome.enrolled

"""Clinic identity set in the web app: stored in `clinic_settings`, overriding env / drip.toml.

Why a version row: the worker and the web app keep a `Renderer` built from the clinic; one
primary-key read of `_version` per tick / per staff request says whether to rebuild it, so a
change on /staff/settings is in the next email without a restart and without reloading every value
on every request.

`validate` checks every field of a form before anything is written (one InputError naming the
field); `save` writes the changed keys and bumps the version in the caller's transaction.
The logo is an upload checked by its magic bytes (not its name), stored in `clinic_assets` and
served from `/clinic/logo/<hash>.<ext>` on our own base URL.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import replace
from typing import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.config import Clinic
from drip.errors import InputError
from drip.models import ClinicAsset, ClinicSetting

VERSION_KEY = "_version"
SIGNOFF_KEY = "require_signoff"  # clinician sign-off on or off ("1" / "0"), over DRIP_REQUIRE_SIGNOFF
RETENTION_KEY = "retention_days"  # delivery history kept, in days ("0": forever), over DRIP_RETENTION_DAYS
RETENTION_LABEL = "Delivery history"
MIN_RETENTION_DAYS = 90  # a shorter history cannot answer "did you email me in spring?"
MAX_RETENTION_DAYS = 3650  # ten years; longer is "keep forever"
LOGO = "logo"
LOGO_PATH = "/clinic/logo/"
MAX_LOGO_BYTES = 512 * 1024
MAX_LOGO_PIXELS = 4000  # either side; an email logo is shown at ~200 px wide

#: Editable fields: (key, label, max length).
FIELDS: tuple[tuple[str, str, int], ...] = (
    ("name", "Clinic name", 120),
    ("address", "Postal address", 300),
    ("website", "Website", 300),
    ("phone", "Phone", 40),
    ("brand_color", "Brand colour", 7),
    ("from_email", "From address", 254),
    ("from_name", "From name", 120),
    ("reply_to", "Reply-to address", 254),
    ("booking_url", "Booking link", 500),
    ("cta_label", "Booking button label", 40),
)
KEYS = tuple(k for k, _, _ in FIELDS)
REQUIRED = {"name", "address", "brand_color", "from_email", "from_name"}  # CAN-SPAM: who and where
URLS = {"website", "booking_url"}
EMAILS = {"from_email", "reply_to"}

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")
_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::\d{1,5})?(?:[/?#][^\s<>\"'\\]*)?")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def validate(form: Mapping[str, str]) -> dict[str, str]:
    """The cleaned values of every editable field, or InputError naming the first bad one."""
    out: dict[str, str] = {}
    for key, label, limit in FIELDS:
        value = str(form.get(key, "") or "").strip()
        if _CONTROL.search(value):
            raise InputError("line breaks and control characters are not allowed", where=label)
        if len(value) > limit:
            raise InputError(f"at most {limit} characters", where=label)
        if not value:
            if key in REQUIRED:
                raise InputError("required", where=label)
        elif key in URLS and not _URL.fullmatch(value):
            raise InputError("must be an http(s) address, e.g. https://clinic.example/book", where=label)
        elif key in EMAILS and not _EMAIL.fullmatch(value):
            raise InputError(f"{value!r} is not an email address", where=label)
        elif key == "brand_color":
            if not _COLOR.fullmatch(value):
                raise InputError("must be a hex colour like #2f6f6a", where=label)
            value = value.lower()
        out[key] = value
    if out["booking_url"] and not out["cta_label"]:
        raise InputError("required when there is a booking link", where="Booking button label")
    return out


# -- stored values


def version(session: Session) -> int:
    """The settings version (0: never saved). One primary-key read."""
    row = session.get(ClinicSetting, VERSION_KEY)
    return int(row.value) if row is not None and row.value.isdigit() else 0


def stored(session: Session) -> dict[str, str]:
    """Every stored override (including `logo_url` when a logo was uploaded)."""
    return {r.key: r.value for r in session.scalars(select(ClinicSetting)) if r.key != VERSION_KEY}


def apply(clinic: Clinic, overrides: Mapping[str, str]) -> Clinic:
    """`clinic` (from env / drip.toml) with the stored values on top."""
    known = {k: v for k, v in overrides.items() if k in Clinic.__dataclass_fields__}
    return replace(clinic, **known) if known else clinic


def signoff(overrides: Mapping[str, str]) -> bool | None:
    """The stored clinician sign-off choice, None when never saved (the environment's then)."""
    value = overrides.get(SIGNOFF_KEY)
    return None if value is None else value == "1"


def save_signoff(session: Session, required: bool) -> None:
    """Store the sign-off choice and bump the version (every process follows on its next read)."""
    _save_one(session, SIGNOFF_KEY, "1" if required else "0")


def retention_days(overrides: Mapping[str, str]) -> int | None:
    """The stored delivery retention in days (0: keep forever), None when never saved (the environment's then)."""
    value = overrides.get(RETENTION_KEY)
    return int(value) if value is not None and value.isdigit() else None


def parse_retention(keep: str, days: str) -> int:
    """The form's choice as days (0: keep forever), or InputError naming the field."""
    if keep == "forever":
        return 0
    if keep != "days":
        raise InputError("choose keep forever or a number of days", where=RETENTION_LABEL)
    days = days.strip()
    if not days.isdigit() or len(days) > 6:
        raise InputError(f"{days[:20]!r} is not a whole number of days, e.g. 365", where=RETENTION_LABEL)
    n = int(days)
    if n < MIN_RETENTION_DAYS:
        raise InputError(f"at least {MIN_RETENTION_DAYS} days (or keep forever); {n} would erase recent history",
                         where=RETENTION_LABEL)
    if n > MAX_RETENTION_DAYS:
        raise InputError(f"at most {MAX_RETENTION_DAYS} days (ten years); choose keep forever to keep everything",
                         where=RETENTION_LABEL)
    return n


def save_retention(session: Session, days: int) -> None:
    """Store the retention (0: forever) and bump the version (every process follows on its next read)."""
    _save_one(session, RETENTION_KEY, str(days))


def current(clinic: Clinic, values: Mapping[str, str]) -> dict[str, str]:
    """The form's values for `clinic`: for the page and for the before -> after of the audit."""
    return {k: str(getattr(clinic, k)) for k in KEYS} | {k: v for k, v in values.items() if k in KEYS}


def _bump(session: Session) -> int:
    new = version(session) + 1
    _put(session, VERSION_KEY, str(new))
    return new


def _put(session: Session, key: str, value: str) -> bool:
    """Store one key; False when it already held `value`."""
    row = session.get(ClinicSetting, key)
    if row is not None and row.value == value:
        return False
    if row is None:
        session.add(ClinicSetting(key=key, value=value))
    else:
        row.value = value
    return True


def _save_one(session: Session, key: str, value: str) -> None:
    """Store one choice and, if it changed, bump the version (every process follows on its next read)."""
    if _put(session, key, value):
        _bump(session)
        session.flush()


def save(session: Session, base: Clinic, values: Mapping[str, str]) -> tuple[dict, dict]:
    """Store `values` (already validated); returns (before, after) of the keys that changed."""
    from drip.audit import changed

    was = current(apply(base, stored(session)), {})
    before, after = changed(was, {k: values[k] for k in KEYS})
    for key in after:
        _put(session, key, values[key])
    if after:
        _bump(session)
    session.flush()
    return before, after


# -- the logo

_KINDS = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF87a", "image/gif", "gif"),
    (b"GIF89a", "image/gif", "gif"),
)


def image_kind(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) from the file's first bytes, or None when it is not an image we take."""
    for magic, ctype, ext in _KINDS:
        if data.startswith(magic):
            return ctype, ext
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return None


def image_size(data: bytes, ctype: str) -> tuple[int, int] | None:
    """(width, height) read from the header; None when it cannot be read (a broken file)."""
    try:
        if ctype == "image/png":
            if data[12:16] != b"IHDR":
                return None
            return struct.unpack(">II", data[16:24])
        if ctype == "image/gif":
            return struct.unpack("<HH", data[6:10])
        if ctype == "image/webp":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            return None
        if ctype == "image/jpeg":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    i += 2
                    continue
                length = struct.unpack(">H", data[i + 2:i + 4])[0]
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    h, w = struct.unpack(">HH", data[i + 5:i + 9])
                    return w, h
                i += 2 + length
            return None
    except struct.error:
        return None
    return None


def check_logo(data: bytes) -> tuple[str, str]:
    """(content type, extension) of an acceptable logo, or InputError saying why not."""
    if not data:
        raise InputError("choose an image file", where="Logo")
    if len(data) > MAX_LOGO_BYTES:
        raise InputError(f"the file is {len(data) // 1024} KB; at most {MAX_LOGO_BYTES // 1024} KB", where="Logo")
    kind = image_kind(data)
    if kind is None:
        raise InputError("not a PNG, JPEG, GIF or WebP image (checked by its content, not its name)", where="Logo")
    size = image_size(data, kind[0])
    if size is None:
        raise InputError(f"the {kind[1].upper()} file is damaged (its size cannot be read)", where="Logo")
    w, h = size
    if not (1 <= w <= MAX_LOGO_PIXELS and 1 <= h <= MAX_LOGO_PIXELS):
        raise InputError(f"{w}x{h} pixels; each side must be 1 to {MAX_LOGO_PIXELS}", where="Logo")
    return kind


def logo_url(base_url: str, sha: str, ext: str) -> str:
    return f"{base_url.rstrip('/')}{LOGO_PATH}{sha[:16]}.{ext}"


def save_logo(session: Session, base_url: str, data: bytes) -> tuple[str, str]:
    """Store a checked logo and point `logo_url` at it; returns (old url, new url)."""
    ctype, ext = check_logo(data)
    sha = hashlib.sha256(data).hexdigest()
    row = session.get(ClinicAsset, LOGO)
    if row is None:
        session.add(ClinicAsset(name=LOGO, content_type=ctype, sha256=sha, data=data))
    else:
        row.content_type, row.sha256, row.data = ctype, sha, data
    return _set_logo_url(session, logo_url(base_url, sha, ext))


def remove_logo(session: Session) -> tuple[str, str]:
    row = session.get(ClinicAsset, LOGO)
    if row is not None:
        session.delete(row)
    return _set_logo_url(session, "")


def _set_logo_url(session: Session, url: str) -> tuple[str, str]:
    row = session.get(ClinicSetting, "logo_url")
    old = row.value if row is not None else ""
    if row is None:
        session.add(ClinicSetting(key="logo_url", value=url))
    else:
        row.value = url
    _bump(session)
    session.flush()
    return old, url


def logo(session: Session) -> ClinicAsset | None:
    return session.get(ClinicAsset, LOGO)

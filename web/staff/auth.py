"""Staff accounts and sessions: argon2 password hashes, a signed session cookie, safe redirects.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory profile). A login with an
unknown address still runs one verification against a dummy hash, so the answer takes as long
as for a known address and does not tell which addresses have accounts.

The session is Starlette's `SessionMiddleware` cookie (itsdangerous-signed JSON, HttpOnly,
SameSite=Lax, Secure when the public URL is https, path /staff). It holds:
  sid       random id; the CSRF form tokens are bound to it; a new one at every login (rotation,
            so a session id planted before login is worthless after it) and at logout;
  uid, fp   the staff user and a fingerprint of their password hash: setting a new password
            (`drip staff add --update`) ends every session of that user on every server;
  login_at  sessions end 12 hours after login whatever the activity;
  flash     messages for the next page.
Logout clears the cookie and also remembers the sid in this process (`RevokedSessions`) so a
copied cookie stops working here at once; other processes stop it at `login_at` + 12 h or at a
password change. That is the price of keeping no session table.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, MutableMapping

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.errors import InputError
from drip.models import StaffUser, utcnow
from subscribers.service import normalize_email

#: The hasher for new hashes. Tests swap in a cheap one (the parameters live in each hash, so
#: verifying a hash made with other parameters still works).
HASHER = PasswordHasher()
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; a cap keeps a megabyte "password" from costing a login
SESSION_LIFETIME = timedelta(hours=12)
COOKIE_NAME = "drip_staff"

_dummy_hashes: dict[tuple[int, int, int], str] = {}


# -- passwords


def check_password_rules(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"password must be at least {MIN_PASSWORD} characters", where="password")
    if len(password) > MAX_PASSWORD:
        raise InputError(f"password must be at most {MAX_PASSWORD} characters", where="password")
    return password


def hash_password(password: str) -> str:
    return HASHER.hash(check_password_rules(password))


def _dummy_hash() -> str:
    key = (HASHER.time_cost, HASHER.memory_cost, HASHER.parallelism)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = HASHER.hash(secrets.token_urlsafe(16))
    return _dummy_hashes[key]


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when the password fits the hash. Without a hash a dummy one is checked (same timing)."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return HASHER.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def fingerprint(password_hash: str) -> str:
    """Short digest of the password hash, kept in the session: a new password ends old sessions."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


# -- staff users


def staff_email(raw: str) -> str:
    """The stored form of a staff address: validated, lower-cased."""
    return normalize_email(raw)[1]


def find_staff(session: Session, email: str) -> StaffUser | None:
    try:
        key = staff_email(email)
    except InputError:
        return None
    return session.scalar(select(StaffUser).where(StaffUser.email == key))


def add_staff(session: Session, email: str, password: str, *, update: bool = False,
              role: str | None = None) -> tuple[StaffUser, bool]:
    """Create a staff user, or (with `update`) set a new password. Returns (user, created).

    A new user gets `role` (default owner, drip/permissions.py); with `update`, a given role is
    set too and an omitted one is kept."""
    from drip.permissions import DEFAULT_ROLE, check_role

    role = check_role(role) if role is not None else None
    key = staff_email(email)
    password_hash = hash_password(password)
    user = session.scalar(select(StaffUser).where(StaffUser.email == key))
    if user is not None:
        if not update:
            raise InputError(f"staff user {key} already exists (use --update to set a new password)", where="email")
        user.password_hash = password_hash
        if role is not None:
            user.role = role
        session.flush()
        return user, False
    user = StaffUser(email=key, password_hash=password_hash, created_at=utcnow(), role=role or DEFAULT_ROLE)
    session.add(user)
    session.flush()
    return user, True


def authenticate(session: Session, email: str, password: str) -> StaffUser | None:
    """The staff user for these credentials, or None (same work either way). Upgrades old hashes."""
    user = find_staff(session, email)
    if not verify_password(user.password_hash if user else None, password):
        return None
    assert user is not None
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)
    return user


# -- sessions


class RevokedSessions:
    """Session ids logged out in this process (bounded: the oldest are forgotten first)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, sid: str) -> None:
        with self._lock:
            self._ids[sid] = time.monotonic()
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def __contains__(self, sid: object) -> bool:
        with self._lock:
            return sid in self._ids


@dataclass(frozen=True)
class StaffIdentity:
    id: int
    email: str
    role: str = "viewer"

    def can(self, perm: str) -> bool:
        from drip.permissions import allowed

        return allowed(self.role, perm)


def new_sid() -> str:
    return secrets.token_urlsafe(24)


def ensure_sid(session: MutableMapping[str, Any]) -> str:
    """The session id, creating an anonymous session for a visitor who has none (login form CSRF)."""
    sid = session.get("sid")
    if not isinstance(sid, str) or not sid:
        sid = new_sid()
        session["sid"] = sid
    return sid


def start_session(session: MutableMapping[str, Any], user: StaffUser, now: datetime) -> None:
    """Log in: a brand-new session (new sid), nothing carried over from before the login."""
    session.clear()
    session.update(sid=new_sid(), uid=user.id, fp=fingerprint(user.password_hash), login_at=int(now.timestamp()))


def end_session(session: MutableMapping[str, Any], revoked: RevokedSessions) -> None:
    sid = session.get("sid")
    if isinstance(sid, str):
        revoked.add(sid)
    session.clear()
    session["sid"] = new_sid()


def current_staff(db: Session, session: MutableMapping[str, Any], now: datetime,
                  revoked: RevokedSessions) -> StaffIdentity | None:
    """The logged-in staff user, or None (and the stale login data is dropped from the session)."""
    uid, fp, login_at, sid = session.get("uid"), session.get("fp"), session.get("login_at"), session.get("sid")
    if uid is None:
        return None
    valid = (
        isinstance(uid, int) and isinstance(fp, str) and isinstance(login_at, int) and isinstance(sid, str)
        and sid not in revoked
        and now.timestamp() - login_at < SESSION_LIFETIME.total_seconds()
    )
    user = db.get(StaffUser, uid) if valid else None
    if user is None or not secrets.compare_digest(fingerprint(user.password_hash), fp):
        for key in ("uid", "fp", "login_at"):
            session.pop(key, None)
        return None
    return StaffIdentity(id=user.id, email=user.email, role=user.role)


def safe_next(value: str | None, default: str = "/staff/campaigns") -> str:
    """Where to go after login: only a local /staff path (no scheme, host, `//` or backslash)."""
    if not value or len(value) > 2000:
        return default
    if not value.startswith("/staff") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return default
    rest = value[len("/staff"):]
    if rest and rest[0] not in "/?#":  # "/staffevil.example" is not ours
        return default
    return value

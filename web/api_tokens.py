"""API tokens for the REST API: made once, shown once, stored only as a SHA-256 digest.

Why SHA-256 and not argon2 (which the staff passwords use): a token is 32 random bytes from
`secrets`, not something a person chose. Slow hashes exist to make guessing a *low-entropy*
secret expensive; nobody can guess 256 random bits, fast hash or not. A fast, unsalted digest
also lets a request find its token with one indexed lookup (`token_hash` is unique) instead of
running argon2 against every stored token on every API call. Whoever reads the database gets
digests that cannot be turned back into working tokens.

The lookup compares digests inside the database, not in Python: there is no timing side channel
worth having, because an attacker who could learn a digest byte by byte would still need a
pre-image of SHA-256 to use it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.errors import InputError, NotFoundError
from drip.models import ApiToken, utcnow

PREFIX = "drip_"  # recognisable in a leaked-secrets scan and in logs
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 200  # anything longer is not one of ours: refused before hashing
MAX_NAME = 100
# last_used_at is written at most once a minute per token, so a busy client does not turn
# every read into a database write (on SQLite: a write lock).
TOUCH_EVERY = timedelta(minutes=1)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    scopes: str | None = None  # drip/permissions.py; None: a token made before scopes, holds every scope

    def has(self, scope: str) -> bool:
        from drip.permissions import token_has

        return token_has(self.scopes, scope)


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.created_at, row.last_used_at, row.revoked, row.scopes)


def check_name(name: str) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise InputError("a token needs a name (who uses it, e.g. 'booking-system')", where="NAME")
    if len(cleaned) > MAX_NAME or _CONTROL.search(cleaned):
        raise InputError(f"token name must be at most {MAX_NAME} printable characters", where="NAME")
    return cleaned


def create_token(session: Session, name: str, now: datetime | None = None,
                 scopes: str = "all") -> tuple[TokenInfo, str]:
    """A new token: (its stored info, the plaintext). The plaintext exists only in the return value.

    `scopes` is the stored form from `drip.permissions.check_scopes` ("all" holds every scope)."""
    token = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = ApiToken(name=check_name(name), token_hash=hash_token(token), created_at=now or utcnow(), revoked=False,
                   scopes=scopes)
    session.add(row)
    session.flush()
    return _info(row), token


def list_tokens(session: Session) -> list[TokenInfo]:
    return [_info(r) for r in session.scalars(select(ApiToken).order_by(ApiToken.id))]


def revoke_token(session: Session, which: str) -> TokenInfo:
    """Revoke by id, or by name when exactly one live token has it. Revoking twice is fine."""
    which = (which or "").strip()
    if which.isdigit() and len(which) < 10:
        row = session.get(ApiToken, int(which))
    else:
        rows = list(session.scalars(select(ApiToken).where(ApiToken.name == which, ApiToken.revoked.is_(False))))
        if len(rows) > 1:
            raise InputError(f"{len(rows)} live tokens are named {which!r}; revoke one by its id", where="TOKEN")
        row = rows[0] if rows else None
    if row is None:
        raise NotFoundError(f"no API token {which!r} (see `drip api-token list`)", where="TOKEN")
    row.revoked = True
    session.flush()
    return _info(row)


def find_token(session: Session, token: str, now: datetime) -> tuple[TokenInfo | None, bool]:
    """The live token with this plaintext (or None), and whether its last use is due to be
    recorded (`touch_token`). Reads only, so a request can check its token in a read session."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return None, False
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked:
        return None, False
    return _info(row), _use_due(row, now)


def _use_due(row: ApiToken, now: datetime) -> bool:
    return row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY


def touch_token(session: Session, token_id: int, now: datetime) -> None:
    """Record a use (at most once per TOUCH_EVERY, whoever else records it meanwhile)."""
    row = session.get(ApiToken, token_id)
    if row is not None and _use_due(row, now):
        row.last_used_at = now


def authenticate(session: Session, token: str, now: datetime) -> TokenInfo | None:
    """The live token with this plaintext, or None. Records when it was last used."""
    info, stale = find_token(session, token, now)
    if info is not None and stale:
        touch_token(session, info.id, now)
    return info

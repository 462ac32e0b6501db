"""Staff invitations: an owner invites an address with a role; the link lets them set a password once.

The link carries 32 random bytes; only their SHA-256 digest is stored (as for API tokens,
web/api_tokens.py says why a fast hash is right for random secrets), so a copy of the database
holds no working link. A link works once and for INVITE_LIFETIME; a new invitation to the same
address replaces the older ones (they stop working).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drip.errors import InputError
from drip.models import StaffInvite, StaffUser
from drip.permissions import check_role
from web.staff.auth import hash_password, staff_email

INVITE_LIFETIME = timedelta(hours=72)
MAX_TOKEN = 100


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_invite(session: Session, email: str, role: str, invited_by: int | None,
                  now: datetime) -> tuple[StaffInvite, str]:
    """A new invitation (and its token, which exists only in the return value)."""
    key = staff_email(email)
    role = check_role(role)
    if session.scalar(select(StaffUser.id).where(StaffUser.email == key)) is not None:
        raise InputError(f"{key} already has a staff account", where="email")
    session.execute(update(StaffInvite).where(StaffInvite.email == key, StaffInvite.used_at.is_(None))
                    .values(expires_at=now))  # older links for this address stop working
    token = secrets.token_urlsafe(32)
    invite = StaffInvite(email=key, role=role, token_hash=_digest(token), invited_by=invited_by, created_at=now,
                         expires_at=now + INVITE_LIFETIME)
    session.add(invite)
    session.flush()
    return invite, token


def find_invite(session: Session, token: str, now: datetime) -> StaffInvite | None:
    """The live (unused, unexpired) invitation for this token, or None."""
    if not token or len(token) > MAX_TOKEN or not token.isascii():
        return None
    invite = session.scalar(select(StaffInvite).where(StaffInvite.token_hash == _digest(token)))
    if invite is None or invite.used_at is not None or invite.expires_at <= now:
        return None
    return invite


def accept_invite(session: Session, token: str, password: str, now: datetime) -> StaffUser:
    """Create the staff user with the invited role; the link is used up in the same transaction."""
    invite = find_invite(session, token, now)
    if invite is None:
        raise InputError("this invitation link is not valid any more", where="invite")
    password_hash = hash_password(password)
    # Used once even when two tabs submit at the same moment: only one UPDATE finds it unused.
    taken = session.execute(update(StaffInvite).where(StaffInvite.id == invite.id, StaffInvite.used_at.is_(None))
                            .values(used_at=now))
    if taken.rowcount != 1:
        raise InputError("this invitation link is not valid any more", where="invite")
    if session.scalar(select(StaffUser.id).where(StaffUser.email == invite.email)) is not None:
        raise InputError(f"{invite.email} already has a staff account", where="email")
    user = StaffUser(email=invite.email, password_hash=password_hash, created_at=now, role=invite.role)
    session.add(user)
    session.flush()
    return user


def pending_invites(session: Session, now: datetime) -> list[StaffInvite]:
    return list(session.scalars(select(StaffInvite).where(StaffInvite.used_at.is_(None), StaffInvite.expires_at > now)
                                .order_by(StaffInvite.created_at.desc())))


def set_role(session: Session, user_id: int, role: str) -> tuple[StaffUser, str]:
    """Change a staff user's role; returns (user, old role). The last owner stays an owner."""
    role = check_role(role)
    user = session.get(StaffUser, user_id)
    if user is None:
        from drip.errors import NotFoundError

        raise NotFoundError(f"no staff user {user_id}", where="staff")
    old = user.role
    if old == "owner" and role != "owner":
        owners = session.scalars(select(StaffUser.id).where(StaffUser.role == "owner")).all()
        if len(owners) <= 1:
            raise InputError("the clinic needs at least one owner: make someone else owner first", where="role")
    user.role = role
    session.flush()
    return user, old

"""`drip staff add EMAIL` / `drip staff list`: staff accounts for the web app (/staff).

The password is never an argument (it would land in the shell history and `ps`): it is asked
twice with a hidden prompt, or read from the first line of standard input with
`--password-stdin` for scripts (`printf '%s\\n' "$PW" | drip staff add ann@clinic --password-stdin`).

`--role` is owner, editor, approver or viewer (drip/permissions.py); a new account without it is
an owner, because the first account, made on the server, must be able to invite and manage the
rest. `drip staff role EMAIL ROLE` changes a role. Both are written to the audit log as "cli".
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from drip.errors import InputError

# The database and the password hasher are imported inside each command: `drip --help` must not
# pay for them (tests/test_startup.py).

app = typer.Typer(help="Staff accounts for the web app.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="staff")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise InputError("no password on standard input", where="--password-stdin")
        return password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command("add")
def add(
    email: str = typer.Argument(..., help="The staff member's email address (their login)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from the first line of stdin."),
    update: bool = typer.Option(False, "--update", help="The account exists: set a new password (ends its sessions)."),
    role: str = typer.Option(None, "--role", help="owner (default for a new account), editor, approver or viewer."),
) -> None:
    """Create a staff login (or, with --update, set a new password)."""
    from drip.audit import Actor, record
    from drip.db import transaction
    from drip.permissions import check_role
    from drip.runtime import open_runtime
    from web.staff.auth import add_staff, check_password_rules, staff_email

    key = staff_email(email)  # a bad address fails before the password is asked
    role = check_role(role) if role is not None else None
    password = check_password_rules(_read_password(password_stdin))
    rt = open_runtime()
    try:
        with transaction(rt.sessions) as session:
            user, created = add_staff(session, key, password, update=update, role=role)
            record(session, Actor.cli(), "staff.add" if created else "staff.password", f"staff user {user.id}",
                   after={"email": user.email, "role": user.role})
            out.print(f"{'added' if created else 'new password for'} staff user {user.email} ({user.role})",
                      markup=False)
    finally:
        rt.close()


@app.command("role")
def role_(
    email: str = typer.Argument(..., help="The staff member's email address."),
    role: str = typer.Argument(..., help="owner, editor, approver or viewer."),
) -> None:
    """Change a staff member's role (takes effect on their next page)."""
    from sqlalchemy import select

    from drip.audit import Actor, record
    from drip.db import transaction
    from drip.errors import NotFoundError
    from drip.models import StaffUser
    from drip.permissions import check_role
    from drip.runtime import open_runtime
    from web.staff.auth import staff_email
    from web.staff.invites import set_role

    key, role = staff_email(email), check_role(role)
    rt = open_runtime()
    try:
        with transaction(rt.sessions) as session:
            uid = session.scalar(select(StaffUser.id).where(StaffUser.email == key))
            if uid is None:
                raise NotFoundError(f"no staff user {key} (see `drip staff list`)", where="EMAIL")
            user, old = set_role(session, uid, role)
            record(session, Actor.cli(), "staff.role", f"staff user {user.id}", before={"role": old},
                   after={"role": user.role, "email": user.email})
            out.print(f"{user.email} is now {user.role} (was {old})", markup=False)
    finally:
        rt.close()


@app.command("list")
def list_() -> None:
    """Staff logins."""
    from rich.table import Table
    from sqlalchemy import select

    from drip.models import StaffUser
    from drip.runtime import open_runtime

    rt = open_runtime()
    try:
        with rt.sessions() as session:
            users = list(session.scalars(select(StaffUser).order_by(StaffUser.email)))
    finally:
        rt.close()
    table = Table("email", "role", "created")
    for u in users:
        table.add_row(u.email, u.role, f"{u.created_at:%Y-%m-%d %H:%M} UTC")
    out.print(table)

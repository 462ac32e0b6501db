"""`drip api-token create NAME | list | revoke TOKEN`: tokens for the REST API (/api/v1).

The token is printed once, on creation, and only its SHA-256 digest is stored (web/api_tokens.py
says why a fast hash is right for random tokens). Lost it? Revoke it and create a new one.

`--scope` (repeatable or comma-separated: read, subscribers:write, subscribers:erase,
enrollments:write, events:write, or all) limits what the token may do; without it a new token
holds every scope, as tokens made before scopes existed do. Creating and revoking are audited.
"""

from __future__ import annotations

import typer
from rich.console import Console

# The database and web.api_tokens are imported inside each command: `drip --help` must not pay for
# SQLAlchemy (tests/test_startup.py).

app = typer.Typer(help="Tokens for the REST API (Authorization: Bearer <token>).", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="api-token")


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Who uses the token, e.g. 'booking-system'."),
    scope: list[str] = typer.Option(None, "--scope", help="What it may do (repeatable): read, subscribers:write, "
                                    "subscribers:erase, enrollments:write, events:write, all (the default)."),
) -> None:
    """Create a token and print it once (stdout: only the token, for scripts)."""
    from drip.audit import Actor, record
    from drip.db import transaction
    from drip.permissions import check_scopes
    from drip.runtime import open_runtime
    from web.api_tokens import check_name, create_token

    check_name(name)  # a bad name fails before the database is opened
    scopes = check_scopes(scope or ["all"])
    rt = open_runtime()
    try:
        with transaction(rt.sessions) as session:
            info, token = create_token(session, name, scopes=scopes)
            record(session, Actor.cli(), "token.create", f"api token {info.id}", after={"name": info.name,
                                                                                         "scopes": scopes})
    finally:
        rt.close()
    # The token alone on stdout (`TOKEN=$(drip api-token create booking)`), the advice on stderr.
    print(token)
    err.print(f"created API token {info.id} ({info.name}, scopes: {scopes}); it is shown only now: store it in a secret manager",
              markup=False)


@app.command("list")
def list_() -> None:
    """Tokens by id: name, created, last used, revoked. Never the token itself."""
    from rich.table import Table
    from rich.text import Text

    from drip.runtime import open_runtime
    from web.api_tokens import list_tokens

    rt = open_runtime()
    try:
        with rt.sessions() as session:
            tokens = list_tokens(session)
    finally:
        rt.close()
    table = Table("id", "name", "scopes", "created (UTC)", "last used (UTC)", "status")
    for t in tokens:
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        table.add_row(str(t.id), Text(t.name), t.scopes or "all", f"{t.created_at:%Y-%m-%d %H:%M}", used, "revoked" if t.revoked else "live")
    out.print(table)


@app.command("revoke")
def revoke(token: str = typer.Argument(..., metavar="TOKEN", help="The token's id (see list), or its name.")) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    from drip.audit import Actor, record
    from drip.db import transaction
    from drip.runtime import open_runtime
    from web.api_tokens import revoke_token

    rt = open_runtime()
    try:
        with transaction(rt.sessions) as session:
            info = revoke_token(session, token)
            record(session, Actor.cli(), "token.revoke", f"api token {info.id}", after={"name": info.name})
    finally:
        rt.close()
    out.print(f"revoked API token {info.id} ({info.name})", markup=False)

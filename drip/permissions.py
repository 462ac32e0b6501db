"""Who may do what: named permissions, the four staff roles, and the API token scopes.

Every staff route declares one permission (`page(handler, perm=...)` in web/staff/base.py) and
every API endpoint one scope (`needs(...)` in web/api.py); tests/web/staff/test_permissions.py walks
the real app and fails on a route without one. Kept free of heavy imports: the CLI reads it.

Roles (a clinic's team, least privilege):
  owner     everything: settings, staff and their roles, the audit log;
  editor    drafts (upload, edit, test emails), imports, subscribers (add, tag, enroll, stop,
            unsubscribe), newsletter drafts; cannot publish, pause or send;
  approver  a clinician: reads campaigns and newsletters, reviews and publishes/pauses/archives
            them, schedules newsletters; sees no patient list (minimum necessary);
  viewer    statistics only: campaign and newsletter pages with their numbers.
The audit log is for owners only: it names staff and patients' record ids.

API scopes: a token holds a set of scopes; a token made before scopes existed (`scopes` NULL in
the database) and one made with `--scope all` hold every scope, so nothing that worked breaks.
"""

from __future__ import annotations

from enum import Enum


class Perm(str, Enum):
    """A staff permission (the value is what the route table and the 403 page show)."""

    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_EDIT = "campaigns:edit"
    CAMPAIGNS_PUBLISH = "campaigns:publish"
    SUBSCRIBERS_READ = "subscribers:read"
    SUBSCRIBERS_WRITE = "subscribers:write"
    SUBSCRIBERS_EXPORT = "subscribers:export"  # one patient's whole record (right of access)
    SUBSCRIBERS_ERASE = "subscribers:erase"  # irreversible: owners only
    NEWSLETTERS_READ = "newsletters:read"
    NEWSLETTERS_EDIT = "newsletters:edit"
    NEWSLETTERS_SEND = "newsletters:send"
    SETTINGS = "settings"
    STAFF_MANAGE = "staff:manage"
    AUDIT_READ = "audit:read"
    # Not permissions a role holds, but declarations a route makes:
    LOGGED_IN = "login"  # any logged-in staff user (home, log out)
    PUBLIC = "public"  # no login (the login page, an invitation link)


ROLES: dict[str, frozenset[Perm]] = {
    "owner": frozenset(p for p in Perm if p not in (Perm.LOGGED_IN, Perm.PUBLIC)),
    "editor": frozenset({Perm.CAMPAIGNS_READ, Perm.CAMPAIGNS_EDIT, Perm.SUBSCRIBERS_READ, Perm.SUBSCRIBERS_WRITE,
                         Perm.SUBSCRIBERS_EXPORT, Perm.NEWSLETTERS_READ, Perm.NEWSLETTERS_EDIT}),
    "approver": frozenset({Perm.CAMPAIGNS_READ, Perm.CAMPAIGNS_PUBLISH, Perm.NEWSLETTERS_READ,
                           Perm.NEWSLETTERS_SEND}),
    "viewer": frozenset({Perm.CAMPAIGNS_READ, Perm.NEWSLETTERS_READ}),
}
ROLE_NAMES = tuple(ROLES)
DEFAULT_ROLE = "owner"  # `drip staff add` without --role: the first account must be able to do everything

ROLE_HELP = {
    "owner": "everything: settings, staff, audit log",
    "editor": "drafts, imports, subscribers; cannot publish or send",
    "approver": "clinician: reviews, publishes and sends content",
    "viewer": "statistics only",
}


def allowed(role: str | None, perm: Perm | str) -> bool:
    """May a staff user with this role use a route that declares `perm`?"""
    perm = Perm(perm)
    if perm is Perm.PUBLIC:
        return True
    if role is None:
        return False
    if perm is Perm.LOGGED_IN:
        return role in ROLES
    return perm in ROLES.get(role, frozenset())


def check_role(role: str) -> str:
    """A role name, or InputError naming the choices."""
    from drip.errors import InputError

    cleaned = (role or "").strip().lower()
    if cleaned not in ROLES:
        raise InputError(f"unknown role {role!r}; choose one of {', '.join(ROLE_NAMES)}", where="--role")
    return cleaned


# -- API token scopes

SCOPES: dict[str, str] = {
    "read": "read subscribers, campaigns, attributes and the delivery ledger",
    "subscribers:write": "add and change subscribers (tags, attributes, status)",
    "subscribers:erase": "erase a patient's data (DELETE /subscribers/{id})",
    "enrollments:write": "enroll patients and stop enrollments",
    "events:write": "report events (e.g. appointment_booked)",
}
ALL_SCOPES = "all"  # stored for a token that holds every scope


def check_scopes(values: list[str] | tuple[str, ...]) -> str:
    """The stored form of the scopes given on the command line: comma-separated, sorted."""
    from drip.errors import InputError

    names: set[str] = set()
    for value in values:
        for part in value.split(","):
            part = part.strip().lower()
            if not part:
                continue
            if part != ALL_SCOPES and part not in SCOPES:
                raise InputError(f"unknown scope {part!r}; choose from {', '.join([*SCOPES, ALL_SCOPES])}",
                                 where="--scope")
            names.add(part)
    if not names:
        raise InputError("give at least one --scope", where="--scope")
    return ALL_SCOPES if ALL_SCOPES in names else ",".join(sorted(names))


def token_has(stored: str | None, scope: str) -> bool:
    """Does a token with these stored scopes hold `scope`? NULL (an old token) holds every scope."""
    assert scope in SCOPES, scope
    if stored is None or stored == ALL_SCOPES:
        return True
    return scope in stored.split(",")


# -- routes outside the staff app and the API: open by design, each with the reason

OPEN_ROUTES: dict[str, str] = {
    "/healthz": "monitors: liveness and worker status, no patient data",
    "/metrics": "Prometheus: checks its own bearer token when one is configured",
    "/static/site.css": "the patient pages' stylesheet",
    "/clinic/logo/{file}": "the clinic logo the emails show (public by nature, no patient data)",
    "/staff/static/staff.css": "the staff pages' stylesheet (the login page needs it)",
    "/u/{token}": "patient: one-click unsubscribe, a signed link",
    "/preferences/{token}": "patient: preference centre, a signed link",
    "/subscribe": "patient: the public sign-up form",
    "/subscribe/check-your-inbox": "patient: after signing up",
    "/confirm/{token}": "patient: double opt-in, a signed link",
    "/webhooks/sendgrid": "SendGrid events: signature checked before parsing",
}
#: API paths (under /api/v1) that need no token: the contract and its docs page.
OPEN_API_ROUTES: dict[str, str] = {
    "/openapi.json": "the API's contract",
    "/docs": "Swagger UI for the contract",
    "/docs/files/{name}": "Swagger UI's own files (a fixed list)",
}

"""Staff app fixtures: a cheap password hasher, a staff user, a logged-in TestClient.

Clients come from tests/web/conftest.py's `make_client` (the real app on the `runtime` database)
with base URL https://clinic.test, like `settings.base_url`.

`runtime` is overridden here: SQLite for most tests (page logic does not depend on the
database), both SQLite and PostgreSQL for the tests marked `@both_databases` (search, numbers,
imports, scheduling: the SQL that differs between them).
"""

from __future__ import annotations

import re
import shutil

import pytest
from argon2 import PasswordHasher

from drip.db import make_engine, session_factory
from drip.runtime import Runtime
from tests.conftest import _truncate_pg
from web.staff import auth

both_databases = pytest.mark.parametrize(
    "runtime", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def runtime(request, settings, _sqlite_template, tmp_path):
    """A migrated, empty database: SQLite, or the `both_databases` parameter."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        db = tmp_path / "drip.sqlite3"
        shutil.copy(_sqlite_template, db)
        url = f"sqlite:///{db}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    engine = make_engine(url)
    if kind == "postgres":
        _truncate_pg(engine)
    rt = Runtime(settings=settings.with_(database_url=url), engine=engine, sessions=session_factory(engine))
    yield rt
    rt.close()

STAFF_EMAIL = "frontdesk@clinic.example.org"
STAFF_PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch):
    """argon2 with the smallest parameters: each login costs ~1 ms instead of ~400 ms here."""
    monkeypatch.setattr(auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


@pytest.fixture
def staff_user(runtime, cheap_hasher):
    with runtime.sessions.begin() as s:
        user, _ = auth.add_staff(s, STAFF_EMAIL, STAFF_PASSWORD)
        return user.id


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(client, email: str = STAFF_EMAIL, password: str = STAFF_PASSWORD, next_path: str = ""):
    page = client.get("/staff/login" + (f"?next={next_path}" if next_path else ""))
    data = {"csrf": csrf_of(page.text), "email": email, "password": password}
    if next_path:
        data["next"] = next_path
    return client.post("/staff/login", data=data, follow_redirects=False)


@pytest.fixture
def anon(make_client):
    """A client that is not logged in."""
    return make_client()


@pytest.fixture
def staff(make_client, staff_user):
    """A logged-in staff client."""
    client = make_client()
    r = login(client)
    assert r.status_code == 303, r.text
    return client


def post_form(client, page_path: str, action: str, data: dict | None = None, files=None, **kw):
    """POST a form the way a browser does: with the CSRF token from the page it is on."""
    token = csrf_of(client.get(page_path).text)
    return client.post(action, data={"csrf": token, **(data or {})}, files=files, follow_redirects=False, **kw)

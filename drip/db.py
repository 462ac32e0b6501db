"""Engine, sessions and migrations.

SQLite (the embedded default) runs in WAL mode with a busy timeout so the web app can read
while the worker writes; it has one writer at a time. PostgreSQL is for several workers.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from drip.schema import at_heads

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger("drip.db")
T = TypeVar("T")
SQLITE_CACHE_KB = 65536  # page cache per connection (PRAGMA cache_size=-N: N KiB)
SQLITE_MMAP_BYTES = 256 * 1024 * 1024  # PRAGMA mmap_size


def make_engine(url: str, *, read_only: bool = False, busy_timeout: float = 30.0, **kwargs) -> Engine:
    """An engine for `url`. On SQLite, `read_only=True` gives an engine for pages that only read
    (see `read_engine`); `busy_timeout` is how long a writer waits for the lock."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not read_only:  # a reader opens what the writer made
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout}, **kwargs)
        busy_ms = int(busy_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
            # Python's sqlite3 opens transactions lazily; take the write lock up front in
            # BEGIN IMMEDIATE so two writers wait instead of failing with "database is locked".
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            # A ledger of millions of rows: SQLite's default page cache (2 MB) re-reads the indexes
            # from the OS for every claim and page; 64 MB per connection (allocated as used), the
            # file memory-mapped (reads without a copy into the cache) and temporary b-trees (sorts,
            # GROUP BY) in memory. `drip bench scale` measures them.
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KB}")
            cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            cur.execute("PRAGMA temp_store=MEMORY")
            if read_only:  # a write through a reader would fail at once, not upgrade a snapshot
                cur.execute("PRAGMA query_only=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # pragma: no cover
            # A reader's deferred BEGIN reads a WAL snapshot and never waits for the writer.
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True, **kwargs)


def read_engine(engine: Engine) -> Engine:
    """The engine for transactions that only read: on a SQLite file, a second engine whose
    transactions are deferred and query-only, so a page keeps loading while a long write (a
    1,000,000-row import holds the lock for a minute) is under way, instead of waiting out the
    busy timeout behind it. Elsewhere (PostgreSQL, in-memory SQLite) the same engine."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return engine
    return make_engine(url.render_as_string(hide_password=False), read_only=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error (no half-written state)."""
    with factory() as session:
        with session.begin():
            yield session


def stored_revisions(engine: Engine) -> set[str]:
    """The revisions recorded in `alembic_version` (empty for a new database)."""
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}
    except DBAPIError:  # no such table yet
        return set()


def migrate(engine: Engine) -> None:
    """Bring the schema to every newest Alembic revision.

    "heads", not "head": features built side by side each add a migration after the same parent,
    and independent branches apply together without a merge revision. A database already at every
    head is left alone without loading Alembic (drip.schema): most commands start on one."""
    if at_heads(stored_revisions(engine)):
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # The web app and the worker of a deployment start together: one migrates, the other
            # waits here and then finds nothing left to do (instead of both creating tables).
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7371001)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def is_unavailable(exc: BaseException) -> bool:
    """True when the database is busy or unreachable for now, not wrong: SQLite's "database is
    locked"/"busy", a lost or refused PostgreSQL connection. A missing table or a bad query is not
    (retrying those would hide a bug forever)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    module = type(exc.orig).__module__ if exc.orig is not None else ""
    if module.startswith("sqlite3"):
        return isinstance(exc, OperationalError) and ("locked" in text or "busy" in text)
    return isinstance(exc, OperationalError)  # psycopg: connection refused/closed, admin shutdown


def short_reason(exc: BaseException) -> str:
    """One line for the log: the driver's message, without SQLAlchemy's SQL echo and link."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def retry_unavailable(
    fn: Callable[[], T],
    what: str,
    *,
    base: float = 0.05,
    cap: float = 5.0,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn` until the database takes it, waiting with growing, jittered delays while it is
    locked or unreachable; other errors propagate at once. One warning line when the wait begins
    and one when it ends, no traceback. `deadline` (time.monotonic) or `stop` end the wait by
    raising the last error."""
    started: float | None = None
    tries = 0
    while True:
        try:
            result = fn()
        except DBAPIError as exc:
            if not is_unavailable(exc):
                raise
            now = time.monotonic()
            if (deadline is not None and now >= deadline) or (stop is not None and stop.is_set()):
                raise
            tries += 1
            if started is None:
                started = now
                log.warning("database unavailable while %s (%s); retrying with backoff", what, short_reason(exc))
            ceiling = min(cap, base * 2 ** (tries - 1))
            wait = random.uniform(ceiling / 2, ceiling)
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - now))
            if stop is not None:
                stop.wait(wait)
            else:
                sleep(wait)
            continue
        if started is not None:
            log.warning("database available again after %.1f s (%s)", time.monotonic() - started, what)
        return result

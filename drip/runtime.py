"""The wired-up application: settings + engine + sessions, built once per process."""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from drip.config import Settings, load_settings
from drip.db import make_engine, migrate, read_engine, retry_unavailable, session_factory


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    #: Sessions for pages and API calls that only read (never committed). On SQLite they do not
    #: wait for the writer, and refuse to write. Default: made from `engine` (`db.read_engine`).
    read_sessions: sessionmaker[Session] = field(default=None)  # type: ignore[assignment]
    #: The clinic settings version applied to `settings` (drip/clinic_settings.py); -1: not read yet.
    settings_version: int = -1

    def __post_init__(self) -> None:
        if self.read_sessions is None:
            reader = read_engine(self.engine)
            self.read_sessions = self.sessions if reader is self.engine else session_factory(reader)
        # The clinic from env / drip.toml (the web app's settings go on top) and the one last applied:
        # when someone replaces `settings` meanwhile (tests, `with_`), its clinic is the new base.
        self.base_clinic = self._applied_clinic = self.settings.clinic

    def refresh_settings(self) -> bool:
        """Apply the clinic settings saved in the web app (and the clinician sign-off and retention
        choices); True when the clinic changed (its renderer must be rebuilt).

        One primary-key read when nothing changed (called once per worker tick and staff request).
        A database without the table yet (not migrated) keeps the env / drip.toml values."""
        from sqlalchemy.exc import SQLAlchemyError

        from drip import clinic_settings

        try:
            with self.read_sessions() as db:
                version = clinic_settings.version(db)
                if version == self.settings_version:
                    return False
                values = clinic_settings.stored(db)
        except SQLAlchemyError:
            return False
        if self.settings.clinic is not self._applied_clinic:
            self.base_clinic = self.settings.clinic
        clinic = clinic_settings.apply(self.base_clinic, values)
        changed = clinic != self.settings.clinic
        saved: dict = {}  # saved on Settings: over DRIP_REQUIRE_SIGNOFF / DRIP_RETENTION_DAYS
        if (signoff := clinic_settings.signoff(values)) is not None:
            saved["require_signoff"] = signoff
        if (retention := clinic_settings.retention_days(values)) is not None:
            saved["retention_days"] = retention
        self.settings = self.settings.with_(clinic=clinic, **saved)
        self._applied_clinic = self.settings.clinic
        self.settings_version = version
        return changed

    def close(self) -> None:
        reader = self.read_sessions.kw.get("bind")
        if reader is not None and reader is not self.engine:
            reader.dispose()
        self.engine.dispose()


def open_runtime(settings: Settings | None = None, *, run_migrations: bool = True,
                 wait_for_database: bool = False, stop: threading.Event | None = None) -> Runtime:
    """`wait_for_database`: for the worker; a database that is locked (SQLite) or not up yet
    (PostgreSQL) is waited for with backoff and one log line instead of a traceback and an exit."""
    settings = settings or load_settings()
    engine = make_engine(settings.db_url, busy_timeout=settings.db_busy_timeout)
    if run_migrations:
        if wait_for_database:
            retry_unavailable(lambda: migrate(engine), "migrating the schema at start-up",
                              cap=settings.db_retry_max_seconds, stop=stop)
        else:
            migrate(engine)
    return Runtime(settings=settings, engine=engine, sessions=session_factory(engine))


#: Net new tracked objects between young collections in a worker (CPython's default is 700).
WORKER_GC_THRESHOLD = 10_000


def tune_worker_gc() -> int:
    """Set the cycle collector up for a long-running worker once it is set up; returns how many
    objects were frozen.

    - Freeze every object alive now (modules, ORM metadata, templates, settings): full collections
      stop walking the ~90,000 objects the imports leave behind. At 20,000 SendGrid recipients that
      walk was 50 ms a pass and a third of the sending time. Frozen objects are never freed by the
      collector, which is right for what lives as long as the process; refcounting still frees them.
    - Collect young objects after 10,000 net allocations instead of 700: a claim of 1,000 emails
      keeps about 5 tracked, acyclic objects per email alive until it is recorded, and the default
      walked them 7 times a claim for nothing (5% of SendGrid sending time).

    Measured by `drip bench sendgrid`, which calls this as `drip run` does.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(WORKER_GC_THRESHOLD, gen1, gen2)
    return gc.get_freeze_count()

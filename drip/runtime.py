"""The wired-up application: settings + engine + sessions, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from drip.config import Settings, load_settings
from drip.db import make_engine, migrate, session_factory


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    def close(self) -> None:
        self.engine.dispose()


def open_runtime(settings: Settings | None = None, *, run_migrations: bool = True) -> Runtime:
    settings = settings or load_settings()
    engine = make_engine(settings.db_url)
    if run_migrations:
        migrate(engine)
    return Runtime(settings=settings, engine=engine, sessions=session_factory(engine))

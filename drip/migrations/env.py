"""Alembic environment: runs on the connection drip.db.migrate() hands over, or on DRIP_DATABASE_URL."""

from alembic import context

from drip.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from drip.config import load_settings
        from drip.db import make_engine

        engine = make_engine(load_settings().db_url)
        with engine.begin() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()


run()

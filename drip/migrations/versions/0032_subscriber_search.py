"""subscriber search by trigram index (issue 15, "flat cost at a million": subscriber search)

A staff search is a substring of the address or the name ("gmail", "garc"). `LIKE '%...%'` can use
no b-tree index, so it read every subscriber: 51 ms at 100k patients, half a second at a million.

- PostgreSQL: pg_trgm (a trusted extension since PostgreSQL 13: a database owner can create it)
  and GIN indexes on `email_key` and `lower(name)`; the planner answers the same `LIKE` from them.
  Where the extension cannot be created (an older server, no CREATE privilege), the migration
  logs a warning and search keeps scanning, as before.
- SQLite: an FTS5 table with the trigram tokenizer (SQLite 3.34+), contentless (it holds the
  index, not a copy of the text), kept in step with `subscribers` by triggers; an erased patient's
  row leaves it through the delete trigger. subscribers.search uses it as a pre-filter and still
  applies the `LIKE`, so the answers are exactly the scan's.

Revision ID: 0032
Revises: 0001
"""
import logging

from alembic import op


revision = '0032'
down_revision = '0001'
branch_labels = None
depends_on = None

log = logging.getLogger("drip.migrations")

_ROW = "new.id, new.email_key, coalesce(new.name, '')"
_OLD = "'delete', old.id, old.email_key, coalesce(old.name, '')"

SQLITE = [
    "CREATE VIRTUAL TABLE subscriber_search USING fts5(email_key, name, content='', tokenize='trigram')",
    f"""CREATE TRIGGER subscriber_search_insert AFTER INSERT ON subscribers BEGIN
        INSERT INTO subscriber_search(rowid, email_key, name) VALUES ({_ROW}); END""",
    f"""CREATE TRIGGER subscriber_search_delete AFTER DELETE ON subscribers BEGIN
        INSERT INTO subscriber_search(subscriber_search, rowid, email_key, name) VALUES ({_OLD}); END""",
    f"""CREATE TRIGGER subscriber_search_update AFTER UPDATE OF email_key, name ON subscribers BEGIN
        INSERT INTO subscriber_search(subscriber_search, rowid, email_key, name) VALUES ({_OLD});
        INSERT INTO subscriber_search(rowid, email_key, name) VALUES ({_ROW}); END""",
    "INSERT INTO subscriber_search(rowid, email_key, name) SELECT id, email_key, coalesce(name, '') FROM subscribers",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)
        return
    if bind.dialect.name != "postgresql":
        return
    savepoint = bind.begin_nested()
    try:
        # In `public`, not the connection's first schema: the extension is one per database, and
        # a schema dropped later (a test's, a tenant's) must not take its functions with it.
        bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        schema = bind.exec_driver_sql(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'pg_trgm'").scalar_one()
        savepoint.commit()
    except Exception as exc:  # noqa: BLE001 - any refusal means: no index, search scans as before
        savepoint.rollback()
        log.warning("pg_trgm is not available (%s); subscriber search will scan the table",
                    str(exc).splitlines()[0])
        return
    # New rows wait in a GIN index's pending list until (auto)vacuum merges them, and every search
    # reads the whole list: 4 MB by default, ~500 pages per index per search after an import
    # (5 ms at 50k patients, where the merged index answers in 0.2 ms). 256 kB bounds that read
    # and still batches an import's index writes.
    for name, expression in (("email", "email_key"), ("name", "lower(name)")):
        op.execute(f'CREATE INDEX ix_subscribers_{name}_trgm ON subscribers USING gin ({expression} "{schema}".gin_trgm_ops)'
                   " WITH (gin_pending_list_limit = 256)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS subscriber_search_{name}")
        op.execute("DROP TABLE IF EXISTS subscriber_search")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_subscribers_name_trgm")
        op.execute("DROP INDEX IF EXISTS ix_subscribers_email_trgm")

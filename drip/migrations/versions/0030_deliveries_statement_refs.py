"""PostgreSQL: the references of `deliveries` to subscribers, enrollments and steps are checked
once per statement instead of once per row

PostgreSQL checks a foreign key with one trigger call and one query per inserted row. For a
13-step enrollment that is 39 such calls a patient; in EXPLAIN ANALYZE of a 5,000-patient
chunk (65,000 deliveries) they took 1.5 s of 2.6. Here the three constraints become triggers
that do the same set-wise:

- after an INSERT on deliveries (one call per statement, with the new rows as a transition
  table): every referenced subscriber, enrollment and step must exist; they are locked
  FOR KEY SHARE, as the foreign key does, so a concurrent delete waits for this transaction or
  makes this insert fail ("foreign_key_violation", the constraint's old name in the message);
- before an UPDATE that changes one of these columns (never done by drip): the same check, per row;
- after a DELETE on subscribers, enrollments or steps (one call per statement): their
  deliveries are deleted (the old ON DELETE CASCADE).

Not covered: TRUNCATE of a parent table alone (it no longer fails while deliveries refer to it)
and a change of a parent's id (ids are never changed). SQLite keeps its foreign keys: it checks
them in-process and cheaply. The models still declare the foreign keys (SQLite, the ORM).
The other two references (broadcast, step version) stay foreign keys: NULL for campaign steps.

Revision ID: 0030
Revises: 0001
"""
from alembic import op


revision = '0030'
down_revision = '0001'
branch_labels = None
depends_on = None

REFS = [("subscriber_id", "subscribers"), ("enrollment_id", "enrollments"), ("step_id", "steps")]


def _check(col: str, parent: str, rows: str) -> str:
    return f"""
    SELECT count(DISTINCT {col}) INTO wanted FROM {rows} WHERE {col} IS NOT NULL;
    IF wanted > 0 THEN
        SELECT count(*) INTO found FROM (
            SELECT 1 FROM {parent} p WHERE p.id IN (SELECT {col} FROM {rows}) FOR KEY SHARE OF p) AS locked;
        IF found <> wanted THEN
            RAISE EXCEPTION 'insert or update on table "deliveries" violates foreign key constraint "fk_deliveries_{col}_{parent}"'
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for col, parent in REFS:
        op.execute(f"ALTER TABLE deliveries DROP CONSTRAINT fk_deliveries_{col}_{parent}")
    body = "".join(_check(col, parent, "new_rows") for col, parent in REFS)
    op.execute(f"""CREATE FUNCTION drip_deliveries_refs() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
DECLARE wanted bigint; found bigint;
BEGIN{body}
    RETURN NULL;
END $fn$""")
    op.execute("CREATE TRIGGER deliveries_refs AFTER INSERT ON deliveries REFERENCING NEW TABLE AS new_rows"
               " FOR EACH STATEMENT EXECUTE FUNCTION drip_deliveries_refs()")
    row = "".join(_check(col, parent, "(SELECT NEW.*) AS new_row") for col, parent in REFS)
    op.execute(f"""CREATE FUNCTION drip_deliveries_refs_row() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
DECLARE wanted bigint; found bigint;
BEGIN{row}
    RETURN NEW;
END $fn$""")
    op.execute("CREATE TRIGGER deliveries_refs_update BEFORE UPDATE OF subscriber_id, enrollment_id, step_id"
               " ON deliveries FOR EACH ROW WHEN (OLD.subscriber_id IS DISTINCT FROM NEW.subscriber_id"
               " OR OLD.enrollment_id IS DISTINCT FROM NEW.enrollment_id OR OLD.step_id IS DISTINCT FROM NEW.step_id)"
               " EXECUTE FUNCTION drip_deliveries_refs_row()")
    for col, parent in REFS:
        op.execute(f"""CREATE FUNCTION drip_{parent}_delete_deliveries() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $fn$
BEGIN
    DELETE FROM deliveries WHERE {col} IN (SELECT id FROM old_rows);
    RETURN NULL;
END $fn$""")
        op.execute(f"CREATE TRIGGER {parent}_delete_deliveries AFTER DELETE ON {parent} REFERENCING OLD TABLE AS old_rows"
                   f" FOR EACH STATEMENT EXECUTE FUNCTION drip_{parent}_delete_deliveries()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for col, parent in REFS:
        op.execute(f"DROP TRIGGER {parent}_delete_deliveries ON {parent}")
        op.execute(f"DROP FUNCTION drip_{parent}_delete_deliveries()")
    op.execute("DROP TRIGGER deliveries_refs_update ON deliveries")
    op.execute("DROP FUNCTION drip_deliveries_refs_row()")
    op.execute("DROP TRIGGER deliveries_refs ON deliveries")
    op.execute("DROP FUNCTION drip_deliveries_refs()")
    for col, parent in REFS:
        op.create_foreign_key(f"fk_deliveries_{col}_{parent}", "deliveries", parent, [col], ["id"], ondelete="CASCADE")

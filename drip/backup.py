"""Backups of the database, taken while the worker runs, and restores into an empty database.

SQLite: the sqlite3 online backup API copies every page in one step under one read transaction,
so the copy is one committed state even while the worker writes (WAL: the worker is not blocked).
PostgreSQL: `pg_dump --format=custom`, which reads from one repeatable-read snapshot; `pg_restore`
loads it in a single transaction. Either way the file is written beside its destination and moved
into place only when complete: a failed backup leaves no half-written file.

A restore only goes into a database that holds no rows (a migrated, empty schema is empty): it
never merges two ledgers, which could send an email twice or lose one.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from glob import glob
from pathlib import Path

from drip.errors import InputError

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
_IGNORED_TABLES = {"alembic_version"}


class BackupError(InputError):
    """A backup or restore that cannot be done as asked (bad file, non-empty target, tool missing)."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    kind: str  # "sqlite" | "postgresql"
    bytes: int
    rows: dict[str, int]  # deliveries by status in the file (SQLite) or the source (PostgreSQL)


# -- helpers ---------------------------------------------------------------------------------

def _sqlite_path(url: str) -> Path:
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url}: an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for pg_dump/pg_restore, and the environment carrying the password
    (not on the command line, where `ps` would show it)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    plain = u.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def pg_tool(name: str) -> str:
    """`pg_dump`/`pg_restore`: `DRIP_PG_BIN` (a folder), the PATH, else Debian's newest
    /usr/lib/postgresql/N/bin (Debian keeps them off the PATH behind a wrapper)."""
    folder = os.environ.get("DRIP_PG_BIN")
    if folder and (Path(folder) / name).exists():
        return str(Path(folder) / name)
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    if versions:
        return versions[-1]
    raise BackupError(f"{name} not found: install the PostgreSQL client (postgresql-client) or set DRIP_PG_BIN")


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _delivery_counts_sqlite(conn: sqlite3.Connection) -> dict[str, int]:
    try:
        return dict(conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
    except sqlite3.Error:
        return {}


def file_kind(path: Path) -> str:
    """What a backup file holds, from its first bytes: "sqlite" or "postgresql"."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BackupError(f"{path}: is a folder, not a backup file") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "postgresql"
    raise BackupError(f"{path}: not a drip backup (neither a SQLite database nor a pg_dump custom-format file)")


def _tmp_beside(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.tmp")


# -- backup ----------------------------------------------------------------------------------

def backup(url: str, dest: Path) -> BackupReport:
    """Write a consistent copy of the database at `url` to `dest` (replaced only when complete)."""
    dest = Path(dest)
    if dest.is_dir():
        raise BackupError(f"{dest}: is a folder; give a file name for the backup")
    if not dest.parent.exists():
        raise BackupError(f"{dest.parent}: no such folder")
    tmp = _tmp_beside(dest)
    try:
        report = _backup_sqlite(url, tmp) if _is_sqlite(url) else _backup_pg(url, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupReport(dest, report[0], dest.stat().st_size, report[1])


def _backup_sqlite(url: str, tmp: Path) -> tuple[str, dict[str, int]]:
    path = _sqlite_path(url)
    if not path.exists():
        raise BackupError(f"{path}: no such database")
    # Read-only source; the worker keeps writing through its own connection meanwhile.
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(tmp)
    try:
        # pages=-1: every page in one step, inside one read transaction = one committed state.
        # (Stepwise copying restarts whenever the worker commits, and might never finish.)
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        problem = dst.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise BackupError(f"{path}: the copy failed its integrity check: {problem}")
        counts = _delivery_counts_sqlite(dst)
    finally:
        dst.close()
        src.close()
    return "sqlite", counts


def _backup_pg(url: str, tmp: Path) -> tuple[str, dict[str, int]]:
    """pg_dump from a snapshot this function exports and holds open, so the counts it reports are
    those of the very state in the file."""
    from sqlalchemy import text

    from drip.db import make_engine

    conninfo, env = _libpq(url)
    cmd = [pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={tmp}"]
    schema = _pg_schema(url)
    if schema:
        cmd.append(f"--schema={schema}")
    engine = make_engine(url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn:
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            counts: dict[str, int] = {}
            if conn.execute(text("SELECT to_regclass('deliveries')")).scalar() is not None:
                counts = {s: n for s, n in conn.execute(text("SELECT status, count(*) FROM deliveries GROUP BY status"))}
            done = subprocess.run(cmd + [f"--snapshot={snapshot}", f"--dbname={conninfo}"],
                                  env=env, capture_output=True, text=True)
            conn.rollback()
    except BackupError:
        raise
    except Exception as exc:  # cannot connect, no such database, not a drip database
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise BackupError(f"cannot read the database to back up: {first}") from exc
    finally:
        engine.dispose()
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {_one_line(done.stderr)}")
    return "postgresql", counts


def _pg_schema(url: str) -> str:
    """The schema named by `options=-csearch_path=...` in the URL (drip lives in one), else ""."""
    from sqlalchemy.engine import make_url

    options = make_url(url).query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    for part in str(options).split():
        if part.startswith("-csearch_path="):
            return part.split("=", 1)[1].split(",")[0].strip('"')
    return ""


def _delivery_counts_pg(url: str) -> dict[str, int]:
    from sqlalchemy import text

    from drip.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {s: n for s, n in conn.execute(text("SELECT status, count(*) FROM deliveries GROUP BY status"))}
    except Exception:
        return {}
    finally:
        engine.dispose()


# -- restore ---------------------------------------------------------------------------------

def non_empty_tables(url: str) -> list[str]:
    """Tables of the database at `url` that hold rows (Alembic's bookkeeping aside)."""
    from sqlalchemy import inspect, text

    from drip.db import make_engine

    if _is_sqlite(url) and not _sqlite_path(url).exists():
        return []
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            names = [n for n in inspect(conn).get_table_names() if n not in _IGNORED_TABLES]
            preparer = engine.dialect.identifier_preparer
            return [n for n in names
                    if conn.execute(text(f"SELECT 1 FROM {preparer.quote(n)} LIMIT 1")).first() is not None]
    finally:
        engine.dispose()


def restore(url: str, src: Path) -> BackupReport:
    """Load the backup `src` into the (empty) database at `url`, then bring its schema up to date."""
    src = Path(src)
    kind = file_kind(src)
    target = "sqlite" if _is_sqlite(url) else "postgresql"
    if kind != target:
        raise BackupError(f"{src}: a {kind} backup cannot be restored into a {target} database ({url.split(':', 1)[0]})")
    full = non_empty_tables(url)
    if full:
        shown = ", ".join(full[:3]) + (", ..." if len(full) > 3 else "")
        raise BackupError(f"refusing to restore into a database that is not empty (rows in {shown}); "
                          "restore into a new, empty database")
    if kind == "sqlite":
        counts = _restore_sqlite(url, src)
    else:
        _restore_pg(url, src)
        counts = _delivery_counts_pg(url)
    from drip.db import make_engine, migrate

    engine = make_engine(url)
    try:
        migrate(engine)  # a backup from an older drip gets this version's migrations
    finally:
        engine.dispose()
    return BackupReport(src, kind, src.stat().st_size, counts)


def _restore_sqlite(url: str, src: Path) -> dict[str, int]:
    path = _sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        problem = source.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise BackupError(f"{src}: the backup failed its integrity check: {problem}")
        target = sqlite3.connect(path, timeout=30)
        try:
            source.backup(target, pages=-1)  # page by page under the target's write lock: all or nothing
            target.execute("PRAGMA journal_mode=WAL")
            return _delivery_counts_sqlite(target)
        finally:
            target.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{src}: cannot be read as a SQLite backup: {exc}") from exc
    finally:
        source.close()


def _restore_pg(url: str, src: Path) -> None:
    conninfo, env = _libpq(url)
    # --clean --if-exists: a migrated empty schema's tables are replaced by the backup's;
    # --single-transaction + --exit-on-error: all of it or nothing.
    cmd = [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--clean", "--if-exists",
           "--single-transaction", "--exit-on-error", f"--dbname={conninfo}", str(src)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {_one_line(done.stderr)}")

"""`drip campaigns merge / split / drop / undo` on a SQLite file; bad input is one line, exit 2."""

from __future__ import annotations

from sqlalchemy import func, select

from drip.db import make_engine, session_factory
from drip.models import AuditEntry, ExcludedText, Step
from tests.test_cli_engine import drip, env  # noqa: F401 (fixtures)


def _count(env, model, *where):
    engine = make_engine(env["DRIP_DATABASE_URL"])
    try:
        with session_factory(engine)() as s:
            return s.scalar(select(func.count()).select_from(model).where(*where))
    finally:
        engine.dispose()


def test_merge_split_drop_undo_from_the_shell(env, seed_path, drip):  # noqa: F811
    assert drip("import", str(seed_path), "--campaign", "seed", env=env).returncode == 0
    steps = _count(env, Step)
    r = drip("campaigns", "merge", "seed", "2", env=env)
    assert r.returncode == 0 and "merge done" in r.stdout and _count(env, Step) == steps - 1
    r = drip("campaigns", "split", "seed", "2", "2", env=env)
    assert r.returncode == 0 and "(continued)" in r.stdout and _count(env, Step) == steps
    r = drip("campaigns", "drop", "seed", "3", env=env)
    assert r.returncode == 0 and "excluded: 1" in r.stdout and _count(env, ExcludedText) == 1
    r = drip("campaigns", "undo", "seed", env=env)
    assert r.returncode == 0 and "undid drop" in r.stdout and _count(env, ExcludedText) == 0
    assert _count(env, AuditEntry, AuditEntry.action.like("draft.%"), AuditEntry.actor == "cli") == 4


def test_bad_input_is_one_line_and_exit_2(env, seed_path, drip):  # noqa: F811
    assert drip("import", str(seed_path), "--campaign", "seed", "--publish", "--yes", env=env).returncode == 0
    for args, words in ((("merge", "nope", "1"), "no campaign 'nope'"),
                        (("merge", "seed", "1"), "drafts only"),
                        (("undo", "seed"), "drafts only")):
        r = drip("campaigns", *args, env=env)
        assert r.returncode == 2 and words in r.stderr, (args, r)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert _count(env, AuditEntry, AuditEntry.action.like("draft.%")) == 0

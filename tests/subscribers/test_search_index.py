"""Subscriber search through the trigram index (migration 0032), a tag through its index (0033) and
the capped counts find exactly what the plain scan finds, on SQLite and PostgreSQL; the index stays
in step with adds, renames and erasures, and is what PostgreSQL's planner uses."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import delete, text, update

from drip.models import Subscriber
from subscribers.erasure import erase_subscriber
from subscribers.service import count_subscribers, list_subscribers, tag_subscribers
from tests.factories import make_subscriber

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)

# Letters that fold (Ä/ä, Σ/σ/ς, İ), the LIKE and FTS5 quote characters, and plain ASCII, so the
# needles hit, miss, and land on case and escaping edges.
ALPHABET = "aAbBäÄσΣςİı%_/\\\"' .@-0"
word = st.text(alphabet=ALPHABET, min_size=0, max_size=12)


def _same(session, needle: str, **kw) -> None:
    indexed = [s.id for s in list_subscribers(session, search=needle, limit=1000, **kw)]
    scanned = [s.id for s in list_subscribers(session, search=needle, limit=1000, indexed=False, **kw)]
    assert indexed == scanned, needle
    if "after" not in kw and "before" not in kw:
        assert count_subscribers(session, search=needle, **kw) == len(scanned)
        assert count_subscribers(session, search=needle, cap=2, **kw) == min(3, len(scanned))


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=st.lists(st.tuples(word, word), min_size=1, max_size=12),
       renames=st.lists(st.tuples(st.integers(0, 11), word), max_size=4),
       erased=st.lists(st.integers(0, 11), max_size=3),
       needles=st.lists(word, min_size=1, max_size=6),
       tagged=st.lists(st.sampled_from(["", "rare", "both", "rare+both"]), max_size=12),
       paused=st.sets(st.integers(0, 11)))
def test_indexed_search_finds_what_the_scan_finds(runtime, people, renames, erased, needles, tagged, paused):
    rt = runtime
    with rt.sessions.begin() as s:
        s.execute(delete(Subscriber))
        subs = [make_subscriber(s, f"{local}{i}@ex.org", name=name, status="paused" if i in paused else "active")
                for i, (local, name) in enumerate(people)]
        ids = [sub.id for sub in subs]
        for sub, tags in zip(subs, tagged):
            if tags:
                tag_subscribers(s, [sub.id], tags.split("+"))
        has = {t for tags in tagged[:len(subs)] for t in tags.split("+") if t}
        for which, name in renames:
            if which < len(ids):
                s.execute(update(Subscriber).where(Subscriber.id == ids[which]).values(name=name))
        for which in erased:
            sub = s.get(Subscriber, ids[which]) if which < len(ids) else None
            if sub is not None:
                erase_subscriber(s, sub, NOW)
    with rt.sessions() as s:
        addresses = [f"{local}{i}@ex.org" for i, (local, _) in enumerate(people[:3])]  # the local-part fragment
        for needle in needles + [name for _, name in people[:3]] + [local for local, _ in people[:3]] + addresses + [""]:
            _same(s, needle)
            _same(s, needle, status="active")
            if "both" in has:
                _same(s, needle, tag="both")
            if "rare" in has:
                _same(s, needle, tag="rare", status="paused")
        if len(ids) > 2:
            _same(s, needles[0], after=ids[1])
            _same(s, needles[0], before=ids[-1])
            if "both" in has:
                _same(s, "", tag="both", after=ids[1])
                _same(s, "", tag="both", before=ids[-1], status="active")


def test_the_index_follows_adds_renames_and_erasure(sqlite_runtime):
    rt = sqlite_runtime
    with rt.sessions.begin() as s:
        ann = make_subscriber(s, "ann.garcia@example.org", name="Ann Garcia")
        make_subscriber(s, "bob@example.org", name="Bob Stone")
    fts = "SELECT rowid FROM subscriber_search WHERE subscriber_search MATCH :q"
    with rt.sessions.begin() as s:
        assert [r[0] for r in s.execute(text(fts), {"q": '"garc"'})] == [ann.id]
        s.execute(update(Subscriber).where(Subscriber.id == ann.id).values(name="Ann Moreno"))
    with rt.sessions.begin() as s:
        assert [r[0] for r in s.execute(text(fts), {"q": '"morEN"'})] == [ann.id]
        assert [r[0] for r in s.execute(text(fts), {"q": '"ann garc"'})] == []  # the old name left
        assert [x.name for x in list_subscribers(s, search="garcia")] == ["Ann Moreno"]  # the address still has it
        erase_subscriber(s, s.get(Subscriber, ann.id), NOW)
    with rt.sessions.begin() as s:
        assert list(s.execute(text(fts), {"q": '"garc"'})) == []
        assert list(s.execute(text(fts), {"q": '"moreno"'})) == []
        s.execute(text("INSERT INTO subscriber_search(subscriber_search) VALUES ('integrity-check')"))
        assert [x.name for x in list_subscribers(s, search="stone")] == ["Bob Stone"]


@pytest.mark.postgres
@pytest.mark.parametrize("runtime", ["postgres"], indirect=True)
def test_postgres_search_is_answered_from_the_trigram_indexes(runtime):
    with runtime.sessions.begin() as s:
        for i in range(30):
            make_subscriber(s, f"p{i}@example.org", name=f"Patient {i}")
    with runtime.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # 30 rows: otherwise a scan is cheapest
        for needle in ("p17@", "tient 2"):
            plan = "\n".join(r[0] for r in conn.execute(text(
                "EXPLAIN SELECT id FROM subscribers WHERE email_key LIKE :p OR lower(name) LIKE :p"),
                {"p": f"%{needle}%"}))
            assert "ix_subscribers_email_trgm" in plan and "ix_subscribers_name_trgm" in plan, plan
        options = dict(conn.execute(text(
            "SELECT c.relname, array_to_string(c.reloptions, ',') FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname LIKE '%_trgm'")).all())
        # a search reads the whole pending list: bounded, not PostgreSQL's 4 MB
        assert options == dict.fromkeys(("ix_subscribers_email_trgm", "ix_subscribers_name_trgm"),
                                        "gin_pending_list_limit=256")
    with runtime.sessions() as s:
        assert [x.email for x in list_subscribers(s, search="p17@")] == ["p17@example.org"]
        assert count_subscribers(s, search="tient 2", cap=5) == 6  # 2, 20..29: stops at cap + 1


def test_a_reimport_that_renames_moves_the_index_too(sqlite_runtime, tmp_path):
    from subscribers.importer import import_csv

    path = tmp_path / "patients.csv"
    path.write_text("email,name\nann@example.org,Ann Garcia\nbob@example.org,Bob Stone\n", encoding="utf-8")
    import_csv(sqlite_runtime, path, now=NOW)
    path.write_text("email,name\nANN@example.org,Ann Moreno\nbob@example.org,\n", encoding="utf-8")
    import_csv(sqlite_runtime, path, now=NOW)  # an upsert: ON CONFLICT DO UPDATE fires the update trigger
    with sqlite_runtime.sessions() as s:
        for needle in ("moreno", "garcia", "stone", "example"):
            _same(s, needle)
        assert [x.name for x in list_subscribers(s, search="moreno")] == ["Ann Moreno"]
        assert list_subscribers(s, search="garcia") == []
        assert [x.name for x in list_subscribers(s, search="stone")] == ["Bob Stone"]  # an empty name kept it

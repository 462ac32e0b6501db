"""campaigns/draft_tools.py: each structure tool on a stored draft, undo, the drafts-only rule, and
the no-word-lost property over random sequences of changes and undos."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import func, select

from campaigns import draft_tools as dt
from campaigns import service
from campaigns.draft import Draft, DraftStep
from drip.audit import Actor
from drip.errors import DripError, InputError
from drip.models import AuditEntry, DraftChange, StepVersion
from tests.factories import make_campaign

CLI = Actor.cli()


def _draft() -> Draft:
    return Draft(title="Acupuncture basics", steps=[
        DraftStep("intro", "", "Welcome", "Welcome to acupuncture basics",
                  "Intro one alpha.\n\nIntro two bravo. More words here.\n\nIntro three charlie."),
        DraftStep("item", "How it works", "Endorphins", "Endorphins and pain", "Endo one delta.\n\nEndo two echo."),
        DraftStep("item", "How it works", "Blood flow", "Blood flow at the needle", "Flow one foxtrot."),
        DraftStep("outro", "", "Next", "Putting it together", "Outro golf.\n\nOutro hotel."),
    ])


@pytest.fixture
def draft(runtime):
    """The draft on SQLite and on PostgreSQL (positions are swapped under a unique constraint)."""
    with runtime.sessions.begin() as s:
        service.create_campaign(s, _draft(), "basics")
    return runtime


def _state(rt):
    with rt.sessions() as s:
        return dt.load_state(s, service.get_campaign(s, "basics"))


def _run(rt, fn, *args, **kw):
    with rt.sessions.begin() as s:
        return fn(s, service.get_campaign(s, "basics"), *args, actor=CLI, **kw)


def words(state: dt.State) -> Counter:
    """Every word of the article the campaign holds: step text, item titles, excluded text."""
    text = [s.body for s in state.steps] + [s.title for s in state.steps if s.kind == "item"]
    text += [f"{e.title} {e.body}" for e in state.excluded]
    return Counter(w.strip(".,!?:").lower() for w in re.findall(r"\S+", " ".join(text)) if w.strip(".,!?:"))


def kept(before: Counter, after: Counter) -> bool:
    return not (before - after)


def test_merge_joins_the_next_step_with_its_title_as_a_new_version(draft):
    before = _state(draft)
    _run(draft, dt.merge, 2)
    after = _state(draft)
    assert [s.title for s in after.steps] == ["Welcome", "Endorphins", "Next"]
    assert after.steps[1].body == "Endo one delta.\n\nEndo two echo.\n\nBlood flow. Flow one foxtrot."
    assert kept(words(before), words(after))
    with draft.sessions() as s:
        assert s.scalar(select(func.max(StepVersion.version)).where(StepVersion.step_id == after.steps[1].id)) == 2
        assert s.scalar(select(AuditEntry.action).order_by(AuditEntry.id.desc()).limit(1)) == "draft.merge"
    with pytest.raises(InputError, match="last"):
        _run(draft, dt.merge, 3)


def test_split_at_a_paragraph_and_delays_stay_by_position(draft):
    delays = [s.delay for s in _state(draft).steps]
    _run(draft, dt.split, 1, 2)
    after = _state(draft)
    assert [s.body for s in after.steps[:2]] == ["Intro one alpha.",
                                                  "Intro two bravo. More words here.\n\nIntro three charlie."]
    assert after.steps[1].title == "Welcome (continued)" and after.steps[1].kind == "intro"
    assert [s.delay for s in after.steps][:4] == delays and after.steps[4].delay > delays[-1]
    assert len({s.slug for s in after.steps}) == 5
    with pytest.raises(InputError, match="no paragraph 9"):
        _run(draft, dt.split, 1, 9)
    with pytest.raises(InputError, match="first paragraph"):
        _run(draft, dt.split, 1, 1)


def test_drop_keeps_the_text_as_excluded_and_restore_puts_it_back(draft):
    _run(draft, dt.drop, 3)
    after = _state(draft)
    assert [s.title for s in after.steps] == ["Welcome", "Endorphins", "Next"]
    assert after.excluded[0].title == "Blood flow" and after.excluded[0].body == "Flow one foxtrot."
    _run(draft, dt.restore, 1)
    back = _state(draft)
    assert [s.title for s in back.steps] == ["Welcome", "Endorphins", "Blood flow", "Next"] and not back.excluded


def test_make_item_by_first_sentence_or_typed_title_and_back(draft):
    before = _state(draft)
    _run(draft, dt.make_item, 1, 2)
    after = _state(draft)
    assert after.steps[1].kind == "item" and after.steps[1].title == "Intro two bravo."
    assert after.steps[1].body == "More words here." and after.steps[1].subject
    assert after.steps[0].body == "Intro one alpha.\n\nIntro three charlie."
    _run(draft, dt.to_paragraph, 2)
    joined = _state(draft)
    assert joined.steps[0].body == "Intro one alpha.\n\nIntro three charlie.\n\nIntro two bravo. More words here."
    assert kept(words(before), words(joined))
    _run(draft, dt.make_item, 1, 3, title="Why it helps")
    assert _state(draft).steps[1].title == "Why it helps"
    assert _state(draft).steps[1].body == "Intro two bravo. More words here."
    with pytest.raises(InputError, match="not an item"):
        _run(draft, dt.to_paragraph, 1)


def test_move_up_and_down_and_undo_each_as_new_versions(draft):
    first = _state(draft)
    _run(draft, dt.move, 3, "up")
    assert [s.title for s in _state(draft).steps] == ["Welcome", "Blood flow", "Endorphins", "Next"]
    _run(draft, dt.move, 3, "down")
    assert [s.title for s in _state(draft).steps] == ["Welcome", "Blood flow", "Next", "Endorphins"]
    with pytest.raises(InputError, match="already the last"):
        _run(draft, dt.move, 4, "down")
    assert _run(draft, dt.undo) == "down"
    assert _run(draft, dt.undo) == "up"
    assert _state(draft) == first
    with pytest.raises(InputError, match="no change to undo"):
        _run(draft, dt.undo)


def test_undo_of_a_merge_makes_new_versions_and_brings_back_the_step(draft):
    first = _state(draft)
    _run(draft, dt.merge, 1)
    _run(draft, dt.undo)
    back = _state(draft)
    assert [(s.title, s.body) for s in back.steps] == [(s.title, s.body) for s in first.steps]
    with draft.sessions() as s:
        versions = s.scalar(select(func.max(StepVersion.version)).where(StepVersion.step_id == back.steps[0].id))
        assert versions == 3  # imported, merged, undone: history kept
        assert s.scalar(select(func.count()).select_from(DraftChange).where(DraftChange.undone.is_(True))) == 1


def test_a_published_campaign_is_refused_and_unchanged(sqlite_runtime):
    with sqlite_runtime.sessions.begin() as s:
        make_campaign(s, "live")
    for fn, args in ((dt.merge, (1,)), (dt.split, (1, 1)), (dt.drop, (1,)), (dt.move, (1, "down")), (dt.undo, ())):
        with pytest.raises(InputError, match="drafts only"):
            with sqlite_runtime.sessions.begin() as s:
                fn(s, service.get_campaign(s, "live"), *args, actor=CLI)
    with sqlite_runtime.sessions() as s:
        assert len(service.get_campaign(s, "live").steps) == 4
        assert s.scalar(select(func.count()).select_from(DraftChange)) == 0


OPS = st.one_of(
    st.tuples(st.just("merge"), st.integers(1, 8)),
    st.tuples(st.just("split"), st.integers(1, 8), st.integers(1, 4)),
    st.tuples(st.just("drop"), st.integers(1, 8)),
    st.tuples(st.just("restore"), st.integers(1, 3)),
    st.tuples(st.just("make_item"), st.integers(1, 8), st.integers(1, 4), st.sampled_from(["", "Typed title"])),
    st.tuples(st.just("to_paragraph"), st.integers(1, 8)),
    st.tuples(st.just("move"), st.integers(1, 8), st.sampled_from(["up", "down"])),
    st.tuples(st.just("undo")),
)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=1, max_size=8))
def test_no_word_is_lost_over_any_changes_and_undos(sqlite_runtime, ops):
    """The text of all steps plus the excluded text keeps every word of the article; undoing every
    change gives back exactly the imported steps."""
    slug = f"p{abs(hash(tuple(ops))) % 10**9}"
    with sqlite_runtime.sessions.begin() as s:
        c = service.create_campaign(s, _draft(), slug)
        original = dt.load_state(s, c)
    done = 0
    for op, *args in ops:
        try:
            with sqlite_runtime.sessions.begin() as s:
                c = service.get_campaign(s, slug)
                if op == "undo":
                    dt.undo(s, c, actor=CLI)
                    done -= 1
                elif op == "make_item":
                    dt.make_item(s, c, args[0], args[1], title=args[2], actor=CLI)
                    done += 1
                else:
                    getattr(dt, op)(s, c, *args, actor=CLI)
                    done += 1
        except DripError:
            pass  # refused (no such step, last step, ...): nothing written
        with sqlite_runtime.sessions() as s:
            state = dt.load_state(s, service.get_campaign(s, slug))
        assert kept(words(original), words(state)), (op, args)
        assert [s.kind for s in state.steps].count("intro") >= 0 and state.steps
    for _ in range(done):
        with sqlite_runtime.sessions.begin() as s:
            dt.undo(s, service.get_campaign(s, slug), actor=CLI)
    with sqlite_runtime.sessions() as s:
        final = dt.load_state(s, service.get_campaign(s, slug))
    strip = lambda st_: [(x.kind, x.title, x.subject, x.body, x.delay) for x in st_.steps]  # noqa: E731
    assert strip(final) == strip(original) and final.excluded == original.excluded


@pytest.mark.parametrize("tool", ["merge", "drop", "move"])
def test_a_structure_change_withdraws_a_draft_submitted_for_sign_off(draft, tool):
    """The approver would otherwise approve (and publish) a structure nobody reviewed: the draft
    goes back to the editor, and the audit row says so."""
    from campaigns.signoff import SUBMITTED, submit

    with draft.sessions.begin() as s:
        submit(s, service.get_campaign(s, "basics"))
    args = {"merge": (dt.merge, 2), "drop": (dt.drop, 3), "move": (dt.move, 2, "down")}[tool]
    _run(draft, *args)
    with draft.sessions() as s:
        campaign = service.get_campaign(s, "basics")
        assert campaign.review_state != SUBMITTED
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == f"draft.{'down' if tool == 'move' else tool}")
                          .order_by(AuditEntry.id.desc())).first()
        assert (entry.after or {}).get("review", "").startswith("withdrawn")


def test_a_draft_not_submitted_keeps_its_review_state_through_a_change(draft):
    from campaigns.signoff import RETURNED

    with draft.sessions.begin() as s:
        service.get_campaign(s, "basics").review_state = RETURNED
    _run(draft, dt.merge, 2)
    with draft.sessions() as s:
        assert service.get_campaign(s, "basics").review_state == RETURNED  # the approver's comment still stands


def test_a_draft_holding_a_translation_refuses_a_structure_change_and_keeps_every_version(draft):
    """Step N of the Spanish upload is step N of the campaign: a merge would have left the merged
    email's Spanish text half of it, a drop would have deleted a Spanish step. Refused, nothing
    changed, in every language."""
    es = Draft(title="Acupuntura básica", steps=[
        DraftStep("intro", "", "Bienvenida", "Bienvenido", "Uno."), DraftStep("item", "Cómo", "Endorfinas", "Endorfinas", "Dos."),
        DraftStep("item", "Cómo", "Flujo", "Flujo de sangre", "Tres."), DraftStep("outro", "", "Después", "Para terminar", "Cuatro."),
    ])
    with draft.sessions.begin() as s:
        service.add_translation(s, service.get_campaign(s, "basics"), es, "es", clinic_language="en")
    before = _state(draft)
    with draft.sessions() as s:
        versions = s.scalar(select(func.count()).select_from(StepVersion))
    for tool, args in ((dt.merge, (2,)), (dt.drop, (3,)), (dt.move, (2, "down")), (dt.move, (3, "up")),
                       (dt.split, (1, 2)), (dt.make_item, (1, 2)), (dt.to_paragraph, (2,)), (dt.restore, (1,)),
                       (dt.undo, ())):
        with pytest.raises(InputError, match="holds es versions of its steps"):
            _run(draft, tool, *args)
    assert _state(draft) == before
    with draft.sessions() as s:
        assert s.scalar(select(func.count()).select_from(StepVersion)) == versions

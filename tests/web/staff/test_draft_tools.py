"""The draft tools on the staff pages: buttons on the campaign and step pages, each change audited,
undo, excluded text shown and restorable, CSRF, roles, published campaigns refused."""

from __future__ import annotations

from sqlalchemy import select

from campaigns import draft_tools
from campaigns.service import get_campaign
from drip.models import AuditEntry
from tests.conftest import SEED
from tests.web.staff.conftest import STAFF_PASSWORD, csrf_of, login, post_form
from tests.web.staff.data import seed_staff
from web.staff import auth

SLUG = "acupuncture-for-pain-relief-and-muscle-spasm"
PAGE = f"/staff/campaigns/{SLUG}"
TOOL = f"{PAGE}/draft"


def _upload(staff):
    r = post_form(staff, "/staff/campaigns", "/staff/campaigns/upload",
                  files={"article": ("acupuncture.txt", SEED.read_bytes(), "application/octet-stream")})
    assert r.status_code == 303


def _state(runtime, slug=SLUG):
    with runtime.sessions() as s:
        return draft_tools.load_state(s, get_campaign(s, slug))


def test_merge_drop_restore_undo_from_the_campaign_page(runtime, staff):
    _upload(staff)
    first = _state(runtime)
    page = staff.get(PAGE).text
    assert "Merge with next" in page and 'value="drop"' in page and "Undo last change" not in page
    r = post_form(staff, PAGE, TOOL, data={"op": "merge", "position": "2"})
    assert r.status_code == 303 and r.headers["location"] == PAGE
    assert len(_state(runtime).steps) == len(first.steps) - 1
    page = staff.get(PAGE).text
    assert "Email 2 and the next are one email now." in page and "Undo last change (merge)" in page
    dropped = _state(runtime).steps[2]
    assert post_form(staff, PAGE, TOOL, data={"op": "drop", "position": "3"}).status_code == 303
    page = staff.get(PAGE).text
    assert "Excluded text" in page and dropped.title in page and "Restore as email" in page
    assert post_form(staff, PAGE, TOOL, data={"op": "restore", "excluded": "1"}).status_code == 303
    assert not _state(runtime).excluded
    for _ in range(3):
        assert post_form(staff, PAGE, TOOL, data={"op": "undo"}).status_code == 303
    back = _state(runtime)
    assert [(s.title, s.body) for s in back.steps] == [(s.title, s.body) for s in first.steps]
    with runtime.sessions() as s:
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("draft.%"))
                                 .order_by(AuditEntry.id)))
        assert actions == ["draft.merge", "draft.drop", "draft.restore", "draft.undo", "draft.undo", "draft.undo"]
        who = s.scalar(select(AuditEntry.actor).where(AuditEntry.action == "draft.merge"))
        assert who == "frontdesk@clinic.example.org"


def test_split_and_make_item_from_the_step_page(runtime, staff):
    _upload(staff)
    step = f"{PAGE}/steps/1"
    page = staff.get(step).text
    assert "Split here" in page and "Make item" in page
    paras = draft_tools.paragraphs(_state(runtime).steps[0].body)
    assert paras[0] == "nervous system" and len(paras) == 2  # the seed's stray fragment
    r = post_form(staff, step, TOOL, data={"op": "split", "position": "1", "paragraph": "2", "back": "step"})
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}/steps/2"
    state = _state(runtime)
    assert state.steps[0].body == paras[0] and state.steps[1].body == paras[1]
    last = len(state.steps)
    outro = draft_tools.paragraphs(state.steps[-1].body)
    assert len(outro) == 3
    r = post_form(staff, f"{PAGE}/steps/{last}", TOOL, data={
        "op": "make_item", "position": str(last), "paragraph": "2", "title": "Typed <b>title</b>", "back": "step"})
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}/steps/{last + 1}"
    new = _state(runtime).steps[-1]
    assert new.kind == "item" and new.title == "Typed <b>title</b>" and new.body == outro[1]
    assert _state(runtime).steps[-2].body == "\n\n".join([outro[0], outro[2]])
    page = staff.get(PAGE).text
    assert "Typed &lt;b&gt;title&lt;/b&gt;" in page and "Typed <b>title" not in page  # autoescaped


def test_refusals_bad_forms_and_csrf(runtime, staff):
    _upload(staff)
    n = len(_state(runtime).steps)
    r = post_form(staff, PAGE, TOOL, data={"op": "merge", "position": str(n)})
    assert r.status_code == 303 and "there is no next step" in staff.get(PAGE).text
    assert post_form(staff, PAGE, TOOL, data={"op": "explode", "position": "1"}).status_code == 400
    assert post_form(staff, PAGE, TOOL, data={"op": "merge", "position": "x"}).status_code == 400
    r = staff.post(TOOL, data={"op": "drop", "position": "1"}, follow_redirects=False)  # no CSRF token
    assert r.status_code == 403
    r = staff.post(TOOL, data={"csrf": "forged", "op": "drop", "position": "1"}, follow_redirects=False)
    assert r.status_code == 403
    assert len(_state(runtime).steps) == n and not _state(runtime).excluded


def test_a_published_campaign_is_refused_with_a_message_and_no_buttons(runtime, staff):
    seed_staff(runtime)
    page = "/staff/campaigns/onboarding"
    assert "Merge with next" not in staff.get(page).text and "Split here" not in staff.get(f"{page}/steps/1").text
    before = len(_state(runtime, "onboarding").steps)
    r = post_form(staff, page, f"{page}/draft", data={"op": "merge", "position": "1"})
    assert r.status_code == 303
    assert "drafts only" in staff.get(page).text and len(_state(runtime, "onboarding").steps) == before


def test_viewers_and_approvers_see_no_tools_and_are_refused(runtime, make_client):
    seed_staff(runtime)
    with runtime.sessions.begin() as s:
        auth.add_staff(s, "viewer@clinic.example.org", STAFF_PASSWORD, role="approver")
    c = make_client()
    login(c, "viewer@clinic.example.org")
    page = "/staff/campaigns/draft-series"
    assert "Merge with next" not in c.get(page).text
    r = c.post(f"{page}/draft", data={"csrf": csrf_of(c.get(page).text), "op": "drop", "position": "1"},
               follow_redirects=False)
    assert r.status_code == 403 and "campaigns:edit" in r.text
    assert len(_state(runtime, "draft-series").steps) == 3

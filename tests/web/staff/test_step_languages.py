"""The step editor in another language: /steps/N?language=es shows and edits the step's Spanish
version (a new Spanish version, the English one untouched, and the other way round), under the
same sign-off, audit, CSRF and role rules as the campaign's own version; Spanish patients get it."""

from __future__ import annotations

import email
import re
from email import policy

from sqlalchemy import select

from campaigns.service import get_campaign, latest_versions
from drip.models import AuditEntry, Step
from tests.campaigns.test_translations import by_patient, send_all, setup
from tests.web.seed import snapshot
from tests.web.staff.conftest import both_databases, csrf_of, post_form
from tests.web.staff.test_signoff import member, post

STEP = "/staff/campaigns/onboarding/steps/2"
ES = STEP + "?language=es"
NEW_SUBJECT = "Cómo ayudan las agujas finas"


def versions(runtime, position=2):
    """(own newest, Spanish newest, Spanish newest live) of one step."""
    with runtime.sessions() as s:
        c = get_campaign(s, "onboarding")
        step = s.scalar(select(Step).where(Step.campaign_id == c.id, Step.position == position))
        return (latest_versions(s, [step.id])[step.id], latest_versions(s, [step.id], language="es")[step.id],
                latest_versions(s, [step.id], live=True, language="es").get(step.id))


def field(html: str, name: str) -> str:
    if name == "body":
        return re.search(r'<textarea name="body"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    return re.search(rf'name="{name}"[^>]*value="([^"]*)"', html).group(1)


def spanish_form(html: str, **changes) -> dict:
    return {**{k: field(html, k) for k in ("subject", "preheader", "title", "body")}, **changes}


def audit_edits(runtime):
    with runtime.sessions() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "step.edit").order_by(AuditEntry.id)))


@both_databases
def test_the_step_page_shows_and_edits_the_spanish_version_only(runtime, staff):
    setup(runtime, languages=())
    own_before, es_before, _ = versions(runtime)
    assert f'href="{ES}"' in staff.get("/staff/campaigns/onboarding").text  # the campaign page's Spanish list
    page = staff.get(STEP).text
    assert f'href="{ES}"' in page and ">Spanish</a>" in page and ">English</a>" in page  # the language switch
    assert field(page, "subject") == own_before.subject

    page = staff.get(ES).text
    assert field(page, "subject") == "Cómo funciona la acupuntura, parte 1"
    assert "Texto del mecanismo 1." in field(page, "body")
    assert f'action="{ES}"' in page and 'name="delay"' not in page  # the delay is the step's, in every language
    assert "You are editing the Spanish version" in page and "Spanish version 1" in page
    assert 'preview?device=desktop&amp;language=es' in page

    r = post_form(staff, ES, ES, spanish_form(page, subject=NEW_SUBJECT, body="Un texto <b>nuevo</b>."))
    assert r.status_code == 303 and r.headers["location"] == ES
    after = staff.get(ES).text
    assert "The Spanish version of email 2 saved. This is version 2" in after
    assert field(after, "subject") == NEW_SUBJECT and "Un texto &lt;b&gt;nuevo&lt;/b&gt;." in after
    own, es, live = versions(runtime)
    assert (es.subject, es.body, es.version, es.language, es.pending) == (NEW_SUBJECT, "Un texto <b>nuevo</b>.", 2,
                                                                          "es", False)
    assert live.id == es.id  # the owner needs no second approval
    assert (own.id, own.version, own.subject, own.body) == (own_before.id, own_before.version, own_before.subject,
                                                            own_before.body)  # English untouched
    [entry] = audit_edits(runtime)
    assert entry.target == "campaign onboarding step 2"
    assert entry.before == {"subject": es_before.subject, "body": es_before.body, "version": 1, "language": "es"}
    assert entry.after == {"subject": NEW_SUBJECT, "body": "Un texto <b>nuevo</b>.", "version": 2, "language": "es"}

    # ... and the other way round: the English form leaves the Spanish version as it is.
    page = staff.get(STEP).text
    r = post_form(staff, STEP, STEP, {**spanish_form(page, subject="How fine needles help"),
                                      "delay": field(page, "delay")})
    assert r.status_code == 303 and r.headers["location"] == STEP
    own, es_now, _ = versions(runtime)
    assert own.subject == "How fine needles help" and own.language == "" and own.version == own_before.version + 1
    assert (es_now.id, es_now.subject, es_now.version) == (es.id, NEW_SUBJECT, 2)
    assert "language" not in audit_edits(runtime)[-1].after  # the own version's row, as before


@both_databases
def test_spanish_patients_get_the_edited_spanish_text_and_english_ones_do_not(runtime, staff):
    setup(runtime, languages=("es", "en"))
    page = staff.get(ES).text
    assert post_form(staff, ES, ES, spanish_form(page, subject=NEW_SUBJECT)).status_code == 303
    mails = by_patient(send_all(runtime))
    assert [m.subject for m in mails["p0@example.org"]][1] == NEW_SUBJECT
    assert [m.subject for m in mails["p1@example.org"]][1] == "How acupuncture works, part 1"


def test_a_draft_campaigns_spanish_step_is_edited_in_place(runtime, staff):
    setup(runtime, languages=(), publish=False)
    _, before, _ = versions(runtime)
    page = staff.get(ES).text
    assert post_form(staff, ES, ES, spanish_form(page, subject=NEW_SUBJECT)).status_code == 303
    _, es, _ = versions(runtime)
    assert (es.id, es.version, es.subject) == (before.id, 1, NEW_SUBJECT)


@both_databases
def test_an_editors_spanish_edit_waits_for_the_approver_who_sees_the_spanish_diff(runtime, make_client):
    setup(runtime, languages=())
    editor = member(runtime, make_client, "editor")
    page = editor.get(ES).text
    assert "saving keeps your change waiting for an approver" in page
    r = post(editor, ES, ES, spanish_form(page, subject=NEW_SUBJECT))
    assert r.status_code == 303
    assert "The Spanish version of email 2 saved as version 2, waiting for approval" in editor.get(ES).text
    own, es, live = versions(runtime)
    assert es.pending and es.subject == NEW_SUBJECT and live.version == 1  # Spanish patients: the approved text
    assert not own.pending and own.version == 1
    assert audit_edits(runtime)[-1].after["pending"] is True and audit_edits(runtime)[-1].after["language"] == "es"
    # a second pending edit changes the same waiting version, as for the own language
    page = editor.get(ES).text
    post(editor, ES, ES, spanish_form(page, preheader="Un resumen breve"))
    _, es2, _ = versions(runtime)
    assert (es2.id, es2.version, es2.preheader, es2.pending) == (es.id, 2, "Un resumen breve", True)

    assert post(editor, "/staff/campaigns/onboarding", "/staff/campaigns/onboarding/submit").status_code == 303
    approver = member(runtime, make_client, "approver")
    review = approver.get("/staff/campaigns/onboarding/review").text
    assert "Spanish version: waiting for approval" in review and 'id="step-es-2"' in review
    # the diff is against the last approved SPANISH text, not the English one
    assert "Cómo&nbsp;funciona&nbsp;la&nbsp;acupuntura,&nbsp;parte&nbsp;1" in review
    assert "Cómo&nbsp;ayudan&nbsp;las&nbsp;agujas&nbsp;finas" in review
    assert post(approver, "/staff/campaigns/onboarding/review",
                "/staff/campaigns/onboarding/approve").status_code == 303
    _, es3, live3 = versions(runtime)
    assert not es3.pending and live3.id == es3.id and live3.subject == NEW_SUBJECT


def test_the_language_switch_refuses_what_it_cannot_show(runtime, staff):
    setup(runtime, languages=(), translate=False)
    before = snapshot(runtime)
    page = staff.get(STEP).text
    assert ">Spanish</a>" not in page  # no translation, no switch
    token = csrf_of(page)
    form = {"csrf": token, "subject": "S", "preheader": "", "title": "T", "body": "B", "delay": "1d"}
    for query, message in [("klingon", "language: unsupported language &#39;klingon&#39; (use one of: en, es)"),
                           ("<b>x</b>", "unsupported language &#39;&lt;b&gt;x&lt;/b&gt;&#39;"),
                           ("es", "email 2 of this campaign has no Spanish version: upload the Spanish article to "
                                  "the campaign first")]:
        for r in (staff.get(STEP, params={"language": query}),
                  staff.post(STEP, params={"language": query}, data=form, follow_redirects=False)):
            assert r.status_code == 400 and message in r.text
            assert "Traceback" not in r.text and "<b>x</b>" not in r.text
    assert snapshot(runtime) == before  # nothing written
    # the campaign's own language named: its own version; no value: the same
    for query in ("en", ""):
        r = staff.get(STEP, params={"language": query})
        assert r.status_code == 200 and 'name="delay"' in r.text


def test_a_bad_spanish_edit_shows_its_error_on_the_spanish_form_and_writes_nothing(runtime, staff):
    setup(runtime, languages=())
    before = snapshot(runtime)
    page = staff.get(ES).text
    r = post_form(staff, ES, ES, spanish_form(page, subject=""))
    assert r.status_code == 400 and "subject cannot be empty" in r.text
    assert f'action="{ES}"' in r.text and "You are editing the Spanish version" in r.text
    assert snapshot(runtime) == before and audit_edits(runtime) == []


def test_roles_and_csrf_hold_for_the_spanish_form(runtime, make_client):
    setup(runtime, languages=())
    viewer, editor = member(runtime, make_client, "viewer"), member(runtime, make_client, "editor")
    before = snapshot(runtime)
    page = viewer.get(ES)
    assert page.status_code == 200 and "Your role can read this email but not change it" in page.text
    assert field(page.text, "subject") == "Cómo funciona la acupuntura, parte 1"  # reads the Spanish version
    assert post(viewer, ES, ES, spanish_form(page.text, subject=NEW_SUBJECT)).status_code == 403
    form = spanish_form(editor.get(ES).text, subject=NEW_SUBJECT)
    assert editor.post(ES, data=form, follow_redirects=False).status_code == 403  # no CSRF token
    assert snapshot(runtime) == before


def test_the_test_email_from_the_spanish_page_is_the_spanish_version(runtime, staff):
    setup(runtime, languages=())
    r = post_form(staff, ES, "/staff/campaigns/onboarding/steps/2/test?language=es")
    assert r.status_code == 303 and r.headers["location"] == ES
    [sent] = runtime.settings.outbox_dir.glob("test-*.eml")
    msg = email.message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert msg["Subject"] == "[TEST] Cómo funciona la acupuntura, parte 1"
    assert "Texto del mecanismo 1." in msg.get_body(("plain",)).get_content()
    preview = staff.get(STEP + "/preview?language=es").text
    assert f'href="{ES}">Edit the Spanish version</a>' in preview


def test_the_spanish_preview_names_the_series_by_its_spanish_title(runtime, staff):
    """As the dispatcher does (campaigns.titles): the footer of the Spanish email says «Acupuntura básica»."""
    setup(runtime, languages=())
    spanish = staff.get(STEP + "/email?language=es").text
    assert "«Acupuntura básica»" in spanish and "Acupuncture basics" not in spanish
    assert "Acupuncture basics" in staff.get(STEP + "/email").text


def test_the_preview_and_test_email_refuse_a_language_as_the_step_page_does(runtime, staff):
    """Not quietly the own version: staff checking or test-sending "the Spanish email" would read
    the English one. Empty, or the campaign's own language: the own version."""
    setup(runtime, languages=(), translate=False)
    before = snapshot(runtime)
    token = csrf_of(staff.get(STEP).text)
    for query, message in [("klingon", "language: unsupported language &#39;klingon&#39; (use one of: en, es)"),
                           ("<b>x</b>", "unsupported language &#39;&lt;b&gt;x&lt;/b&gt;&#39;"),
                           ("es", "email 2 of this campaign has no Spanish version: upload the Spanish article to "
                                  "the campaign first")]:
        for r in (staff.get(STEP + "/preview", params={"language": query}),
                  staff.get(STEP + "/email", params={"language": query}),
                  staff.post(STEP + "/test", params={"language": query}, data={"csrf": token, "back": "preview"},
                             follow_redirects=False)):
            assert r.status_code == 400 and message in r.text, (query, r.request.url)
            assert "Traceback" not in r.text and "<b>x</b>" not in r.text
    assert list(runtime.settings.outbox_dir.glob("test-*.eml")) == []  # no test email went out
    assert snapshot(runtime) == before
    own = staff.get(STEP + "/email").text
    for query in ("", "en"):
        assert staff.get(STEP + "/preview", params={"language": query}).status_code == 200
        assert staff.get(STEP + "/email", params={"language": query}).text == own
        r = staff.post(STEP + "/test", params={"language": query}, data={"csrf": token}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == STEP  # the own version, sent
    assert len(list(runtime.settings.outbox_dir.glob("test-*.eml"))) == 2


def test_a_spanish_campaigns_preview_in_spanish_is_its_own_version(runtime, staff):
    """A campaign written in Spanish: ?language=es names its own language, not a translation."""
    setup(runtime, languages=(), translate=False)
    with runtime.sessions.begin() as s:
        get_campaign(s, "onboarding").language = "es"
    own = staff.get(STEP + "/email").text
    assert staff.get(STEP + "/email?language=es").text == own
    assert staff.get(STEP + "/preview?language=es").status_code == 200
    r = staff.get(STEP + "/email?language=en")
    assert r.status_code == 400 and "has no English version" in r.text

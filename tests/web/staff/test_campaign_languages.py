"""The Spanish article uploaded to the same campaign: from the web import form (a language field) and
`drip import FILE --campaign SLUG --language es`; an editor's upload to a published campaign waits
for a clinician like any edit."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaigns.service import get_campaign, latest_versions
from drip.i18n import ENGLISH_NAMES
from drip.models import Campaign, Step, StepVersion
from tests.web.seed import snapshot
from tests.web.staff.conftest import both_databases, post_form
from tests.web.staff.test_signoff import member

EN = """Acupuncture for Back Pain

Many of our patients come to us with back pain. Here is how acupuncture can help, explained in two short topics.

1. Release of Endorphins: Fine needles prompt the body to release endorphins, its own pain relievers, which ease \
discomfort for hours after a session.

2. Better Circulation: Acupuncture improves blood flow to tight muscles, which brings oxygen to the tissue and helps \
it relax and heal.

We look forward to seeing you at your next visit.
"""
ES = """Acupuntura para el dolor de espalda

Muchos de nuestros pacientes vienen con dolor de espalda. Así es como la acupuntura puede ayudar, explicado en dos \
temas breves.

1. Liberación de endorfinas: Las agujas finas hacen que el cuerpo libere endorfinas, sus propios analgésicos, que \
alivian las molestias durante horas después de una sesión.

2. Mejor circulación: La acupuntura mejora el flujo de sangre a los músculos tensos, lo que lleva oxígeno al tejido \
y le ayuda a relajarse y sanar.

Esperamos verle en su próxima visita.
"""
SLUG = "back-pain"


def upload(client, body: str, page: str = "/staff/campaigns", **fields):
    return post_form(client, page, "/staff/campaigns/upload", data=fields,
                     files={"article": ("article.txt", body.encode(), "text/plain")})


def spanish_versions(runtime, slug=SLUG):
    with runtime.sessions() as s:
        c = get_campaign(s, slug)
        ids = [st.id for st in s.scalars(select(Step).where(Step.campaign_id == c.id).order_by(Step.position))]
        return [latest_versions(s, ids, language="es").get(i) for i in ids]


@both_databases
def test_staff_upload_the_spanish_article_to_the_same_campaign(runtime, staff):
    assert upload(staff, EN, slug=SLUG).status_code == 303
    assert '<option value="es">Spanish</option>' in staff.get("/staff/campaigns").text
    r = upload(staff, ES, slug=SLUG, language="es")
    assert r.status_code == 303 and r.headers["location"] == f"/staff/campaigns/{SLUG}"
    page = staff.get(r.headers["location"]).text
    assert "The Spanish version of 4 emails was stored" in page
    assert "Liberación de endorfinas" in page  # the campaign page lists each step's Spanish subject
    versions = spanish_versions(runtime)
    assert [v.subject for v in versions] == [
        "Acupuntura para el dolor de espalda", "Liberación de endorfinas: lo que debe saber",
        "Mejor circulación: lo que debe saber", "Acupuntura para el dolor de espalda"]
    assert not any(v.pending for v in versions)
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 1  # no second campaign


def test_a_new_campaign_can_be_written_in_spanish(runtime, staff):
    assert upload(staff, ES, slug="espalda", language="es").status_code == 303
    with runtime.sessions() as s:
        c = get_campaign(s, "espalda")
        assert c.language == "es"
        first = latest_versions(s, [c.steps[1].id])[c.steps[1].id]
        assert first.subject == "Liberación de endorfinas: lo que debe saber"


def test_a_spanish_article_that_does_not_match_is_refused_and_nothing_is_written(runtime, staff):
    upload(staff, EN, slug=SLUG)
    before = snapshot(runtime)
    r = upload(staff, ES.split("2. Mejor")[0], slug=SLUG, language="es")
    assert r.status_code == 400
    assert "the Spanish article splits into 2 emails but campaign &#39;back-pain&#39; has 4 steps" in r.text
    assert snapshot(runtime) == before
    bad = upload(staff, ES, slug=SLUG, language="fr")
    assert bad.status_code == 400 and "unsupported language" in bad.text


def test_an_editors_spanish_upload_to_a_published_campaign_waits_for_the_approver(runtime, make_client, staff):
    upload(staff, EN, slug=SLUG)
    with runtime.sessions.begin() as s:
        get_campaign(s, SLUG).status = "published"
    editor = member(runtime, make_client, "editor")
    r = upload(editor, ES, page=f"/staff/campaigns/{SLUG}", slug=SLUG, language="es", from_campaign="1")
    assert r.status_code == 303
    assert "once a clinician approves it" in editor.get(r.headers["location"]).text
    assert all(v.pending for v in spanish_versions(runtime))
    with runtime.sessions() as s:
        c = get_campaign(s, SLUG)
        ids = [st.id for st in c.steps]
        assert latest_versions(s, ids, live=True, language="es") == {}  # nothing Spanish goes out yet
    approver = member(runtime, make_client, "approver")
    page = approver.get(f"/staff/campaigns/{SLUG}/review")
    assert page.status_code == 200
    assert "Spanish version: waiting for approval" in page.text and 'id="step-es-4"' in page.text
    assert "Liberaci\u00f3n&nbsp;de&nbsp;endorfinas" in page.text  # the approver reads the Spanish text (difflib: &nbsp;)
    from tests.web.staff.test_signoff import post

    post(approver, f"/staff/campaigns/{SLUG}/review", f"/staff/campaigns/{SLUG}/approve")
    assert not any(v.pending for v in spanish_versions(runtime))
    assert "waiting for approval" not in approver.get(f"/staff/campaigns/{SLUG}/review").text


def test_drip_import_with_language_adds_the_spanish_version(sqlite_runtime, tmp_path, monkeypatch, capsys):
    from drip.cli import main

    for key, value in {"DRIP_DATABASE_URL": sqlite_runtime.settings.db_url, "DRIP_DATA_DIR": str(tmp_path / "d"),
                       "DRIP_CONFIG": str(tmp_path / "none.toml"), "COLUMNS": "200"}.items():
        monkeypatch.setenv(key, value)
    en, es = tmp_path / "en.txt", tmp_path / "es.txt"
    en.write_text(EN, encoding="utf-8")
    es.write_text(ES, encoding="utf-8")

    def drip(*args):
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return code, out.out + out.err

    assert drip("import", str(en), "--campaign", SLUG)[0] == 0
    code, out = drip("import", str(es), "--campaign", SLUG, "--language", "es")
    assert code == 0 and "Imported the Spanish version of back-pain (4 steps)" in out
    assert [v.title for v in spanish_versions(sqlite_runtime)][1] == "Liberación de endorfinas"
    code, out = drip("import", str(es), "--campaign", SLUG, "--language", "klingon")
    assert code == 2 and "--language: unsupported language 'klingon'" in out and "Traceback" not in out
    short = tmp_path / "short.txt"
    short.write_text(ES.split("2. Mejor")[0], encoding="utf-8")
    with sqlite_runtime.sessions() as s:
        before = s.scalar(select(func.count()).select_from(StepVersion))
    code, out = drip("import", str(short), "--campaign", SLUG, "--language", "es")
    assert code == 2 and "splits into 2 emails" in out and len(out.strip().splitlines()) == 1
    with sqlite_runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(StepVersion)) == before
    # Without --language an existing slug is still refused, as before.
    code, out = drip("import", str(es), "--campaign", SLUG)
    assert code == 2 and "already exists" in out


@both_databases
def test_step_preview_shows_the_spanish_version_when_chosen(runtime, staff):
    """The preview's language switch renders the step's Spanish version, and only when chosen."""
    assert upload(staff, EN, slug=SLUG).status_code == 303
    assert upload(staff, ES, slug=SLUG, language="es").status_code == 303
    own = staff.get(f"/staff/campaigns/{SLUG}/steps/2/email").text
    spanish = staff.get(f"/staff/campaigns/{SLUG}/steps/2/email?language=es").text
    assert "agujas finas" in spanish and "agujas finas" not in own and "Fine needles" in own
    page = staff.get(f"/staff/campaigns/{SLUG}/steps/2/preview?language=es").text
    assert "language=es" in page and ENGLISH_NAMES["es"] in page

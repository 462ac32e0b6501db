"""A campaign with a version of each step per language (migration 0031): staff upload the Spanish
article to the same campaign; a patient gets their language's version, else the campaign's own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from campaigns import service, signoff
from campaigns.draft import Draft, DraftStep
from campaigns.enrollment import enroll
from delivery.dispatcher import Dispatcher
from drip.errors import InputError
from drip.models import Campaign, Delivery, StepVersion
from tests.delivery.test_dispatcher import Clock, ScriptedBackend, run_until_done
from tests.factories import make_campaign, make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


def spanish(n_items: int = 2, title: str = "Acupuntura básica") -> Draft:
    steps = [DraftStep("intro", "", "Bienvenida", "Bienvenido a la acupuntura", "Un párrafo de introducción.")]
    steps += [DraftStep("item", "Cómo funciona", f"Mecanismo {i}", f"Cómo funciona la acupuntura, parte {i}",
                        f"Texto del mecanismo {i}.") for i in range(1, n_items + 1)]
    return Draft(title=title, steps=steps)


def setup(runtime, languages=("es", "en", None, "es"), *, translate=True, publish=True):
    """A two-topic campaign (3 steps), with its Spanish version, and one patient per language."""
    with runtime.sessions.begin() as s:
        c = make_campaign(s, n_items=2, every=timedelta(days=1), publish=publish)
        if translate:
            service.add_translation(s, c, spanish(), "es", clinic_language="en")
        for i, language in enumerate(languages):
            sub = make_subscriber(s, f"p{i}@example.org", name=f"P{i}")
            sub.language = language
            enroll(s, sub, c, T0, clinic_tz="UTC")
        return c.id


def send_all(runtime, settings=None):
    clock = Clock(T0)
    backend = ScriptedBackend(settings or runtime.settings)
    rt = runtime if settings is None else type(runtime)(settings=settings, engine=runtime.engine,
                                                        sessions=runtime.sessions)
    run_until_done(Dispatcher(rt, backend, clock=clock), clock)
    return backend.sent


def by_patient(sent):
    out: dict[str, list] = {}
    for m in sent:
        out.setdefault(m.to_email, []).append(m)
    return out


def test_each_patient_gets_their_language_or_the_campaign_default(runtime):
    setup(runtime)
    mails = by_patient(send_all(runtime))
    for address in ("p0@example.org", "p3@example.org"):  # Spanish patients
        subjects = [m.subject for m in mails[address]]
        assert subjects == ["Bienvenido a la acupuntura", "Cómo funciona la acupuntura, parte 1",
                            "Cómo funciona la acupuntura, parte 2"]
        first = mails[address][0]
        assert "Hola, P0:" in first.text or "Hola, P3:" in first.text
        assert "Darse de baja:" in first.text and "Paso 1 de 3" in first.text
        assert "Texto del mecanismo" not in first.text and "Un párrafo de introducción." in first.text
        assert "Unsubscribe" not in first.text and 'lang="es"' in first.html
        assert "a la serie «Acupuntura básica»" in first.text  # the Spanish article's title
    for address in ("p1@example.org", "p2@example.org"):  # English, and no language (the clinic's: English)
        subjects = [m.subject for m in mails[address]]
        assert subjects[0] == "Welcome to acupuncture basics" and "Hola" not in mails[address][0].text
        assert "Unsubscribe: https://clinic.test/u/" in mails[address][0].text
        assert "for the series \u201cAcupuncture basics\u201d" in mails[address][0].text


def test_the_ledger_records_the_language_version_that_was_sent(runtime):
    setup(runtime, languages=("es", "en"))
    send_all(runtime)
    with runtime.sessions() as s:
        rows = s.execute(select(Delivery.subscriber_id, StepVersion.language, StepVersion.subject)
                         .join(StepVersion, StepVersion.id == Delivery.step_version_id)
                         .order_by(Delivery.id)).all()
    assert {(sid, lang) for sid, lang, _ in rows} == {(1, "es"), (2, "")}
    assert len(rows) == 6


def test_a_spanish_patient_gets_the_default_where_no_spanish_version_exists(runtime):
    setup(runtime, languages=("es",), translate=False)
    [first, *_] = send_all(runtime)
    assert first.subject == "Welcome to acupuncture basics"
    assert "Unsubscribe: https://clinic.test/u/" in first.text  # the email is English throughout


def test_an_edit_to_the_spanish_version_waiting_for_approval_is_not_sent(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, n_items=2, every=timedelta(days=1))
        service.add_translation(s, c, spanish(), "es", clinic_language="en")
        service.add_translation(s, c, spanish(title="Acupuntura"), "es", clinic_language="en", pending=True)
        s.execute(StepVersion.__table__.update().where(StepVersion.language == "es", StepVersion.version == 2)
                  .values(subject="NUEVO"))
        sub = make_subscriber(s, "p@example.org")
        sub.language = "es"
        enroll(s, sub, c, T0, clinic_tz="UTC")
        assert signoff.pending_steps(s, c) == 3
        cid = c.id
    assert [m.subject for m in send_all(runtime)][0] == "Bienvenido a la acupuntura"
    with runtime.sessions.begin() as s:
        signoff.approve(s, s.get(Campaign, cid), T0)
        assert signoff.pending_steps(s, s.get(Campaign, cid)) == 0


def test_a_campaign_written_in_spanish_sends_spanish_footers_and_its_english_version_to_english_patients(runtime):
    with runtime.sessions.begin() as s:
        c = service.create_campaign(s, spanish(), "acupuntura", every=timedelta(days=1), window="daily 00:00-23:59")
        c.language = "es"
        service.set_status(s, c, "published")
        from tests.factories import make_draft

        service.add_translation(s, c, make_draft(2), "en", clinic_language="en")
        for address, language in (("es@example.org", "es"), ("en@example.org", "en"), ("none@example.org", None)):
            sub = make_subscriber(s, address, name="Ana")
            sub.language = language
            enroll(s, sub, c, T0, clinic_tz="UTC")
    mails = by_patient(send_all(runtime))
    assert mails["es@example.org"][0].subject == "Bienvenido a la acupuntura"
    assert "Darse de baja:" in mails["es@example.org"][0].text
    assert mails["en@example.org"][0].subject == "Welcome to acupuncture basics"
    assert "Unsubscribe:" in mails["en@example.org"][0].text and "Hi Ana," in mails["en@example.org"][0].text
    # no language of their own: the clinic's (English), and there is an English version
    assert mails["none@example.org"][0].subject == "Welcome to acupuncture basics"


# --------------------------------------------------------------------------- storing a translation


def versions(runtime, language):
    with runtime.sessions() as s:
        return s.execute(select(StepVersion.step_id, StepVersion.version, StepVersion.subject)
                         .where(StepVersion.language == language).order_by(StepVersion.step_id,
                                                                            StepVersion.version)).all()


def test_uploading_a_language_again_adds_versions_and_the_newest_goes_out(runtime):
    cid = setup(runtime, languages=())
    with runtime.sessions.begin() as s:
        service.add_translation(s, s.get(Campaign, cid), spanish(title="Otra"), "es", clinic_language="en")
    assert [v for _, v, _ in versions(runtime, "es")] == [1, 2, 1, 2, 1, 2]
    assert [v for _, v, _ in versions(runtime, "")] == [1, 1, 1]  # the campaign's own steps are untouched
    with runtime.sessions() as s:
        steps = [st.id for st in s.get(Campaign, cid).steps]
        assert {v.version for v in service.latest_versions(s, steps, language="es").values()} == {2}
        assert {v.language for v in service.latest_versions(s, steps).values()} == {""}
    # An edit of the English step still counts its own versions (no clash with the Spanish ones).
    with runtime.sessions.begin() as s:
        v = service.edit_step(s, s.get(Campaign, cid), 1, service.StepEdit(subject="Hello"))
        assert (v.version, v.language) == (2, "")


@pytest.mark.parametrize("draft,language,message", [
    (spanish(n_items=3), "es", "splits into 4 emails but campaign 'onboarding' has 3 steps"),
    (Draft("x", [DraftStep("item", "", "a", "a", "a."), *spanish().steps[1:]]), "es",
     "email 1 of the Spanish article is 'item' but step 1 of 'onboarding' is 'intro'"),
    (spanish(), "en", "is written in 'en' already"),
    (spanish(), "fr", "unsupported language 'fr'"),
])
def test_a_translation_that_does_not_fit_is_refused_and_nothing_is_written(runtime, draft, language, message):
    cid = setup(runtime, languages=(), translate=False)
    with runtime.sessions.begin() as s:
        with pytest.raises(InputError, match=message) as err:
            service.add_translation(s, s.get(Campaign, cid), draft, language, clinic_language="en")
    assert err.value.where == "--language"
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(StepVersion).where(StepVersion.language != "")) == 0


def test_an_archived_campaign_takes_no_translation(runtime):
    cid = setup(runtime, languages=(), translate=False)
    with runtime.sessions.begin() as s:
        c = s.get(Campaign, cid)
        service.set_status(s, c, "archived")
        with pytest.raises(InputError, match="archived"):
            service.add_translation(s, c, spanish(), "es", clinic_language="en")


def test_the_database_refuses_two_versions_with_the_same_number_in_one_language(runtime):
    from sqlalchemy.exc import IntegrityError

    cid = setup(runtime, languages=())
    with runtime.sessions() as s:
        step_id = s.get(Campaign, cid).steps[0].id
    with pytest.raises(IntegrityError):
        with runtime.sessions.begin() as s:
            s.add(StepVersion(step_id=step_id, version=1, language="es", title="t", subject="s", body="b"))
    with runtime.sessions.begin() as s:  # the same number in another language is fine
        s.add(StepVersion(step_id=step_id, version=1, language="xx", title="t", subject="s", body="b"))


def test_edit_step_in_a_language_changes_only_that_languages_version(runtime):
    setup(runtime, languages=())
    with runtime.sessions.begin() as s:
        c = service.get_campaign(s, "onboarding")
        v = service.edit_step(s, c, 2, service.StepEdit(subject="Cómo ayudan las agujas"), language="es")
        assert (v.language, v.version, v.subject) == ("es", 2, "Cómo ayudan las agujas")
        assert service.latest_versions(s, [v.step_id])[v.step_id].version == 1  # the own version as it was
        for language, edit, message in [
                ("xx", service.StepEdit(subject="S"), "language: unsupported language 'xx'"),
                ("es", service.StepEdit(delay=timedelta(days=1)), "delay: the delay is shared by every language")]:
            with pytest.raises(InputError, match=message):
                service.edit_step(s, c, 2, edit, language=language)
    with runtime.sessions.begin() as s:
        c = make_campaign(s, "other", n_items=1)
        with pytest.raises(InputError, match="step 1 of campaign 'other' has no Spanish version"):
            service.edit_step(s, c, 1, service.StepEdit(subject="S"), language="es")

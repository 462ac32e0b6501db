"""A patient's language: set from the sign-up form, the API, CSV import and the preference page;
the pages and emails follow it (else the browser's Accept-Language, else the clinic's default)."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email import policy

import pytest
from sqlalchemy import func, select

from campaigns.render import EmailContent, Renderer
from drip.config import Clinic
from drip.models import Subscriber
from subscribers.importer import import_csv
from tests.factories import make_campaign, make_subscriber
from tests.web.api_helpers import API, bearer, new_token
from tests.web.seed import T0, snapshot


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def subscriber(runtime, address: str) -> Subscriber | None:
    with runtime.sessions() as s:
        return s.scalar(select(Subscriber).where(Subscriber.email_key == address))


def new_patient(runtime, address="ana@example.org", language=None, status="active") -> int:
    with runtime.sessions.begin() as s:
        sub = make_subscriber(s, address, name="Ana", status=status)
        sub.language = language
        return sub.id


def outbox(runtime) -> list[email.message.EmailMessage]:
    folder = runtime.settings.outbox_dir
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.glob("*.eml"))]


# --------------------------------------------------------------------------- which language a page uses


def test_a_spanish_patient_gets_spanish_pages_whatever_the_browser_says(runtime, client, signer):
    token = signer.unsubscribe_token(new_patient(runtime, language="es"))
    r = client.get(f"/u/{token}", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert r.status_code == 200 and '<html lang="es">' in r.text
    assert "Darme de baja de todos los correos" in r.text and "Unsubscribe from all" not in r.text
    assert r.headers["content-language"] == "es" and "Accept-Language" in r.headers["vary"]
    prefs = client.get(f"/preferences/{token}", headers={"Accept-Language": "en"})
    assert "Preferencias de correo" in prefs.text and "Pausar todos los correos" in prefs.text


def test_an_english_patient_gets_english_even_from_a_spanish_browser(runtime, client, signer):
    token = signer.unsubscribe_token(new_patient(runtime, language="en"))
    r = client.get(f"/u/{token}", headers={"Accept-Language": "es-MX,es"})
    assert '<html lang="en">' in r.text and "Unsubscribe from all emails" in r.text


def test_without_a_stored_language_the_browser_then_the_clinic_decides(runtime, make_client, signer):
    token = signer.unsubscribe_token(new_patient(runtime))
    english_clinic, spanish_clinic = make_client(), make_client(clinic=Clinic(language="es"))
    assert "Darme de baja" in english_clinic.get(f"/u/{token}", headers={"Accept-Language": "es-ES,es;q=0.9"}).text
    assert "Unsubscribe from all" in english_clinic.get(f"/u/{token}", headers={"Accept-Language": "fr"}).text
    assert "Darme de baja" in spanish_clinic.get(f"/u/{token}", headers={"Accept-Language": "fr"}).text
    assert "Unsubscribe from all" in spanish_clinic.get(f"/u/{token}", headers={"Accept-Language": "en"}).text


def test_staff_pages_stay_english(sqlite_client):
    r = sqlite_client.get("/staff/login", headers={"Accept-Language": "es"})
    assert r.status_code == 200 and '<html lang="es">' not in r.text


def test_the_patient_chooses_a_language_on_the_preference_page(runtime, client, signer):
    sid = new_patient(runtime)
    token = signer.unsubscribe_token(sid)
    page = client.get(f"/preferences/{token}")
    assert '<option value="es" lang="es">Español</option>' in page.text
    r = client.post(f"/preferences/{token}", data={"csrf": csrf_of(page.text), "action": "language", "language": "es"})
    assert r.status_code == 200 and "Su idioma está guardado." in r.text and '<html lang="es">' in r.text
    assert subscriber(runtime, "ana@example.org").language == "es"
    before = snapshot(runtime)
    bad = client.post(f"/preferences/{token}", data={"csrf": csrf_of(page.text), "action": "language", "language": "fr"})
    assert bad.status_code == 400 and "No entendimos esa opción." in bad.text
    assert snapshot(runtime) == before


# --------------------------------------------------------------------------- the sign-up form


def sign_up(client, **fields):
    page = client.get("/subscribe", headers={"Accept-Language": fields.pop("accept", "en")})
    data = {"csrf": csrf_of(page.text), "name": "Ana", "email": "ana@example.org", "tz": "America/Chicago",
            "consent": "yes", "website": ""}
    data.update(fields)
    return client.post("/subscribe", data=data, follow_redirects=False)


def test_the_sign_up_form_offers_the_languages_and_follows_the_browser(client):
    html = client.get("/subscribe", headers={"Accept-Language": "es-MX,es;q=0.9"}).text
    assert '<html lang="es">' in html and "Consejos de salud de" in html
    assert '<option value="es" lang="es" selected>Español</option>' in html
    assert "Acepto recibir correos educativos de la clínica." in html  # the default consent, translated
    assert "?lang=en" in html  # a link to the English page
    english = client.get("/subscribe?lang=en", headers={"Accept-Language": "es"}).text
    assert '<html lang="en">' in english and '<option value="en" lang="en" selected>English</option>' in english


def test_a_spanish_sign_up_stores_the_language_and_the_spanish_consent_wording(runtime, client):
    with runtime.sessions.begin() as s:
        make_campaign(s, "onboarding", n_items=1, every=timedelta(days=1))
    r = sign_up(client, language="es")
    assert r.status_code == 303 and r.headers["location"] == "/subscribe/check-your-inbox?lang=es"
    assert "Revise su bandeja de entrada" in client.get(r.headers["location"]).text
    sub = subscriber(runtime, "ana@example.org")
    assert (sub.language, sub.status, sub.consent_text_version) == ("es", "pending", "2026-11:es")
    [message] = outbox(runtime)
    assert message["Subject"] == "Confirme su suscripción a Riverside Acupuncture & Wellness"
    text = message.get_body(("plain",)).get_content()
    assert "Hola, Ana:" in text and "Confirmar mi suscripción" in text and "No quiero recibir ningún correo" in text
    html = message.get_body(("html",)).get_content()
    assert "El equipo de Riverside" in html and "Never email me" not in html
    link = re.search(r"https://clinic\.test(/confirm/\S+)", text).group(1)
    page = client.get(link, headers={"Accept-Language": "en"})  # the stored language wins
    assert "Confirme su suscripción" in page.text
    done = client.post(link, data={"csrf": csrf_of(page.text)})
    assert "Suscripción confirmada" in done.text and subscriber(runtime, "ana@example.org").status == "active"


def test_an_english_sign_up_records_the_wording_version_as_before(runtime, client):
    sign_up(client, language="en")
    sub = subscriber(runtime, "ana@example.org")
    assert (sub.language, sub.consent_text_version) == ("en", "2026-11")
    assert outbox(runtime)[0]["Subject"] == "Confirm your subscription to Riverside Acupuncture & Wellness"


def test_a_bad_language_on_the_form_is_named_and_nothing_is_written(runtime, client):
    before = snapshot(runtime)
    r = sign_up(client, language="klingon")
    assert r.status_code == 400 and "Please choose a language from the list." in r.text
    assert 'aria-describedby="language-error"' in r.text
    assert snapshot(runtime) == before and not runtime.settings.outbox_dir.exists()


# --------------------------------------------------------------------------- the API


def test_the_api_sets_returns_and_resets_the_language(runtime, client):
    h = bearer(new_token(runtime))
    r = client.post(f"{API}/subscribers", json={"email": "ana@example.org", "language": "es"}, headers=h)
    assert r.status_code == 201 and r.json()["language"] == "es"
    sid = r.json()["id"]
    assert client.get(f"{API}/subscribers/{sid}", headers=h).json()["language"] == "es"
    assert client.patch(f"{API}/subscribers/{sid}", json={"language": "EN"}, headers=h).json()["language"] == "en"
    assert client.patch(f"{API}/subscribers/{sid}", json={"language": ""}, headers=h).json()["language"] is None
    again = client.post(f"{API}/subscribers", json={"email": "ana@example.org", "language": "es-MX"}, headers=h)
    assert again.status_code == 200 and again.json()["language"] == "es"


def test_the_api_refuses_an_unsupported_language_and_writes_nothing(runtime, client):
    h = bearer(new_token(runtime))
    before = snapshot(runtime)
    r = client.post(f"{API}/subscribers", json={"email": "ana@example.org", "language": "fr"}, headers=h)
    assert r.status_code == 422
    [problem] = r.json()["detail"]
    assert problem["loc"] == ["body", "language"] and "en, es" in problem["msg"]
    assert snapshot(runtime) == before
    sid = new_patient(runtime, language="es")
    r = client.patch(f"{API}/subscribers/{sid}", json={"language": "fr", "name": "Changed"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "language"]
    assert (subscriber(runtime, "ana@example.org").language, subscriber(runtime, "ana@example.org").name) == ("es", "Ana")


# --------------------------------------------------------------------------- CSV import


def test_csv_import_reads_the_language_column(runtime, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("email,name,language\nana@example.org,Ana,es\nben@example.org,Ben,English\n"
                    "cy@example.org,Cy,\n", encoding="utf-8")
    report = import_csv(runtime, path, now=T0)
    assert (report.created, report.skipped) == (3, 0)
    assert [subscriber(runtime, a).language for a in ("ana@example.org", "ben@example.org", "cy@example.org")] == [
        "es", "en", None]
    # A later file with an empty cell keeps the stored language; a value replaces it.
    path.write_text("email,language\nana@example.org,\nben@example.org,es-MX\n", encoding="utf-8")
    import_csv(runtime, path, now=T0)
    assert [subscriber(runtime, a).language for a in ("ana@example.org", "ben@example.org")] == ["es", "es"]


def test_a_bad_language_in_csv_names_the_row_and_field(runtime, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("email,language\nana@example.org,es\nben@example.org,Klingon\n", encoding="utf-8")
    report = import_csv(runtime, path, now=T0)
    [error] = report.errors
    assert (error.line, error.field) == (3, "language") and "'Klingon'" in error.message and "en, es" in error.message
    assert str(error).startswith("line 3: language: unsupported language")
    assert (report.created, report.skipped) == (1, 1)
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 1
    strict = import_csv(runtime, path, mode="refuse", now=T0)
    assert strict.refused and [(e.line, e.field) for e in strict.errors] == [(3, "language")]


def test_the_cli_import_prints_the_language_error_and_exits_2(sqlite_runtime, tmp_path, monkeypatch, capsys):
    from drip.cli import main

    path = tmp_path / "people.csv"
    path.write_text("email,language\nben@example.org,xx\n", encoding="utf-8")
    for key, value in {"DRIP_DATABASE_URL": sqlite_runtime.settings.db_url, "DRIP_DATA_DIR": str(tmp_path / "d"),
                       "DRIP_CONFIG": str(tmp_path / "none.toml"), "COLUMNS": "200"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_:
        main(["subscribers", "import", str(path), "--strict"])
    out = capsys.readouterr()
    assert exit_.value.code == 2
    text = out.out + out.err
    assert re.search(r"2\s*[│┃]\s*language\s*[│┃]\s*unsupported language 'xx'", text), text
    assert "nothing imported" in text
    assert "Traceback" not in out.out + out.err


def test_drip_subscribers_add_sets_the_language(sqlite_runtime, tmp_path, monkeypatch, capsys):
    from drip.cli import main

    for key, value in {"DRIP_DATABASE_URL": sqlite_runtime.settings.db_url, "DRIP_DATA_DIR": str(tmp_path / "d"),
                       "DRIP_CONFIG": str(tmp_path / "none.toml")}.items():
        monkeypatch.setenv(key, value)

    def drip(*args):
        try:
            main(list(args))
            return 0
        except SystemExit as exc:
            return exc.code

    assert drip("subscribers", "add", "ana@example.org", "--language", "es") == 0
    assert subscriber(sqlite_runtime, "ana@example.org").language == "es"
    assert drip("subscribers", "add", "ana@example.org", "--name", "Ana") == 0  # omitted: kept
    assert subscriber(sqlite_runtime, "ana@example.org").language == "es"
    capsys.readouterr()
    assert drip("subscribers", "add", "ana@example.org", "--language", "fr") == 2
    out = capsys.readouterr()
    assert "--language: unsupported language 'fr'" in out.out + out.err and "Traceback" not in out.out + out.err
    assert subscriber(sqlite_runtime, "ana@example.org").language == "es"


# --------------------------------------------------------------------------- email footers


def content(language: str = "") -> EmailContent:
    return EmailContent(key="step:1:v1", title="Sleep", subject="Sleep", preheader="", body="Rest well.",
                        position=1, total=3, campaign_title="Better sleep", language=language)


def test_the_email_footer_greeting_and_labels_follow_the_email_language():
    renderer = Renderer(Clinic(booking_url="https://clinic.example/book"), base_url="https://clinic.test")
    recipient = renderer.recipient("Dr. Ana Ruiz", "ana@example.org", "tok")
    es = renderer.render(content("es"), recipient)
    en = renderer.render(content(), recipient)
    for part in (es.text, es.html):
        for spanish in ("Hola, Ana:", "Darse de baja", "Preferencias de correo", "Paso 1 de 3", "Pedir una cita",
                        "Recibe este correo porque se suscribió en Riverside Acupuncture",
                        "Es educación general sobre la salud, no consejo médico.", "Un cordial saludo,"):
            assert spanish in part.replace("&amp;", "&"), spanish
    assert "Unsubscribe" not in es.text and "Email preferences" not in es.html and 'lang="es"' in es.html
    assert "Hi Ana," in en.text and "Unsubscribe: https://clinic.test/u/tok" in en.text and "Darse" not in en.html
    assert renderer.compile(content("es")).key == "step:1:v1:es" and renderer.compile(content()).key == "step:1:v1"
    # The provider's shared body (SendGrid) gives the same Spanish email per recipient.
    compiled = renderer.compile(content("es"))
    shared = compiled.shared_content()
    subs = compiled.substitutions(recipient)
    html = shared.html
    for key, value in subs.items():
        html = html.replace(key, value)
    assert html == es.html
    # The direct (uncached) path agrees.
    assert renderer.render_direct(content("es"), recipient).text == es.text


def test_a_clinic_whose_default_is_spanish_sends_spanish_footers():
    renderer = Renderer(Clinic(language="es"), base_url="https://clinic.test")
    out = renderer.render(content(), renderer.recipient("Ana", "a@example.org", "tok"))
    assert "Darse de baja: https://clinic.test/u/tok" in out.text


def test_a_repeated_sign_up_without_a_language_keeps_the_first_choice(runtime, client):
    sign_up(client, language="es")
    sign_up(client)  # the form posted again without a language field (a page from before): still Spanish
    assert subscriber(runtime, "ana@example.org").language == "es"
    sign_up(client, language="en")  # a pending sign-up asked again in English: English now
    assert subscriber(runtime, "ana@example.org").language == "en"

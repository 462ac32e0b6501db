"""Sign-up starts a sequence: the campaign staff choose (web, CLI), warnings, the README's API example."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from drip.cli import main
from drip.models import Enrollment, Tag, SubscriberTag
from tests.factories import make_campaign
from tests.web.api_helpers import API, bearer, new_token
from tests.web.staff.conftest import login, post_form
from tests.web.test_signup import confirm_link, csrf_of, outbox_messages, sign_up
from web.staff import auth
from argon2 import PasswordHasher

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture
def staff_client(runtime, make_client, monkeypatch):
    monkeypatch.setattr(auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    with runtime.sessions.begin() as s:
        auth.add_staff(s, "frontdesk@clinic.example.org", "correct horse battery staple")
    client = make_client()
    assert login(client, "frontdesk@clinic.example.org", "correct horse battery staple").status_code == 303
    return client


def confirm(client, runtime) -> str:
    link = confirm_link(next(iter(outbox_messages(runtime).values())))
    return client.post(link, data={"csrf": csrf_of(client.get(link).text)}).text


def test_fresh_install_warns_staff_and_the_patient_is_promised_nothing(runtime, staff_client, make_client):
    for page in ("/staff/signup", "/staff/campaigns", "/staff/subscribers"):
        html = staff_client.get(page).text
        assert 'id="signup-warning"' in html and "there is no campaign &#39;onboarding&#39;" in html, page
    patient = make_client()
    sign_up(patient)
    link = confirm_link(next(iter(outbox_messages(runtime).values())))
    page = patient.get(link).text  # the button page promises nothing either
    assert "confirm" in page and "mailing list" in page and "receiving educational emails" not in page
    done = confirm(patient, runtime)
    assert "is confirmed on the mailing list" in done and "will now receive" not in done and "series" not in done


def test_staff_choose_the_campaign_and_a_list_and_sign_ups_start_it(runtime, staff_client, make_client):
    with runtime.sessions.begin() as s:
        make_campaign(s, "acupuncture-basics", n_items=2, every=timedelta(days=1))  # named after its title
        make_campaign(s, "draft-one", n_items=1, publish=False)
    r = post_form(staff_client, "/staff/signup", "/staff/signup",
                  data={"campaign": "draft-one", "tag": "website"})
    assert r.status_code == 303
    assert "draft, not published" in staff_client.get("/staff/signup").text  # chosen, but not live: warned
    r = post_form(staff_client, "/staff/signup", "/staff/signup",
                  data={"campaign": "acupuncture-basics", "tag": "website"})
    html = staff_client.get("/staff/signup").text
    assert 'id="signup-warning"' not in html and 'id="signup-status"' in html
    assert 'id="signup-warning"' not in staff_client.get("/staff/campaigns").text

    patient = make_client()
    sign_up(patient)
    link = confirm_link(next(iter(outbox_messages(runtime).values())))
    assert "start receiving educational emails" in patient.get(link).text
    done = confirm(patient, runtime)
    assert "will now receive educational emails" in done and "Acupuncture basics" in done
    with runtime.sessions() as s:
        (enrollment,) = s.scalars(select(Enrollment)).all()
        assert enrollment.source == "web-form"
        tags = s.scalars(select(Tag.name).join(SubscriberTag, SubscriberTag.tag_id == Tag.id)).all()
        assert tags == ["website"]


def test_unknown_campaign_in_the_staff_form_is_400_and_changes_nothing(runtime, staff_client):
    r = post_form(staff_client, "/staff/signup", "/staff/signup", data={"campaign": "no-such", "tag": ""})
    assert r.status_code == 400 and "no campaign &#39;no-such&#39;" in r.text


def test_signup_form_post_needs_csrf(runtime, staff_client):
    r = staff_client.post("/staff/signup", data={"campaign": ""}, follow_redirects=False)
    assert r.status_code == 403


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def test_cli_sets_the_campaign_and_refuses_an_unknown_one(sqlite_runtime, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIP_DATABASE_URL", sqlite_runtime.settings.database_url)
    monkeypatch.setenv("DRIP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIP_CONFIG", str(tmp_path / "absent.toml"))
    with sqlite_runtime.sessions.begin() as s:
        make_campaign(s, "welcome", n_items=1)
    code, out, err = run(capsys, "signup", "show")
    assert code == 0 and "warning: form default: Sign-ups start no emails" in err
    code, out, err = run(capsys, "signup", "set-campaign", "no-such")
    assert code == 2 and "no campaign 'no-such'" in err and "Traceback" not in err
    code, out, err = run(capsys, "signup", "set-campaign", "welcome", "--list", "website")
    assert code == 0 and "start 'welcome' and join the list 'website'" in out, err
    code, out, _ = run(capsys, "signup", "show")
    assert code == 0 and "'welcome'" in out


def _readme_api_example() -> tuple[str, dict]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"curl -X POST http://127\.0\.0\.1:8000(/api/v1/\S+) .*?-d '([^']+)'", readme, re.S)
    assert match, "the README's API example is gone"
    return match.group(1), json.loads(match.group(2))


def test_the_readme_api_example_literally(runtime, client):
    path, body = _readme_api_example()
    client.headers.update(bearer(new_token(runtime)))
    # A fresh install: a clear 404 that says where the slugs are, nothing written.
    r = client.post(path, json=body)
    assert r.status_code == 404
    assert f"no campaign '{body['enroll']}'" in r.json()["detail"] and "GET /api/v1/campaigns" in r.json()["detail"]
    assert client.get(f"{API}/subscribers").json()["total"] == 0
    # Staff create the campaign the README names (`drip import ... --campaign onboarding --publish`).
    with runtime.sessions.begin() as s:
        make_campaign(s, body["enroll"], n_items=2, every=timedelta(days=1))
    assert body["enroll"] in [c["slug"] for c in client.get(f"{API}/campaigns").json()]
    r = client.post(path, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["enrollment"]["campaign"] == body["enroll"] and r.json()["enrollment"]["scheduled"] == 3


def test_a_named_form_starts_its_own_campaign_and_list(runtime, staff_client, make_client):
    with runtime.sessions.begin() as s:
        make_campaign(s, "general", n_items=1)
        make_campaign(s, "back-pain-series", n_items=2)
    post_form(staff_client, "/staff/signup", "/staff/signup", data={"campaign": "general", "tag": "website"})
    r = post_form(staff_client, "/staff/signup", "/staff/signup",
                  data={"form": "back-pain", "campaign": "back-pain-series", "tag": "back-pain"})
    assert r.status_code == 303
    assert "/subscribe?form=back-pain" in staff_client.get("/staff/signup").text
    patient = make_client()
    page = patient.get("/subscribe?form=back-pain")
    assert 'name="form" value="back-pain"' in page.text
    patient.post("/subscribe", data={"csrf": csrf_of(page.text), "name": "Ann", "email": "ann@example.org",
                                     "tz": "Europe/Paris", "consent": "yes", "website": "", "form": "back-pain"})
    # an unknown form name is the default form
    page = patient.get("/subscribe?form=nonexistent")
    patient.post("/subscribe", data={"csrf": csrf_of(page.text), "name": "Bob", "email": "bob@example.org",
                                     "tz": "Europe/Paris", "consent": "yes", "website": "", "form": "nonexistent"})
    for message in outbox_messages(runtime).values():
        link = confirm_link(message)
        patient.post(link, data={"csrf": csrf_of(patient.get(link).text)})
    with runtime.sessions() as s:
        from drip.models import Campaign, Subscriber
        got = dict(s.execute(select(Subscriber.email, Campaign.slug).join(Enrollment, Enrollment.subscriber_id == Subscriber.id)
                             .join(Campaign, Campaign.id == Enrollment.campaign_id)).all())
        assert got == {"ann@example.org": "back-pain-series", "bob@example.org": "general"}
        sources = dict(s.execute(select(Subscriber.email, Subscriber.consent_source)).all())
        assert sources == {"ann@example.org": "web-form:back-pain", "bob@example.org": "web-form"}


def test_a_named_form_without_a_published_campaign_is_warned_on_staff_pages_and_promises_nothing(
        runtime, staff_client, make_client):
    with runtime.sessions.begin() as s:
        make_campaign(s, "general", n_items=1)
        make_campaign(s, "back-pain-series", n_items=2, publish=False)
    post_form(staff_client, "/staff/signup", "/staff/signup", data={"campaign": "general", "tag": ""})
    for page in ("/staff/signup", "/staff/campaigns", "/staff/subscribers"):
        assert 'id="signup-warning"' not in staff_client.get(page).text, page  # the only form starts emails
    post_form(staff_client, "/staff/signup", "/staff/signup",
              data={"form": "back-pain", "campaign": "back-pain-series", "tag": "back-pain"})
    for page in ("/staff/signup", "/staff/campaigns", "/staff/subscribers"):
        html = staff_client.get(page).text
        warning = re.search(r'id="signup-warning">(.*?)<a ', html, re.S)
        assert warning, page
        assert "/subscribe?form=back-pain" in warning.group(1) and "draft, not published" in warning.group(1), page

    patient = make_client()  # a patient on that landing page is not promised emails
    page = patient.get("/subscribe?form=back-pain")
    patient.post("/subscribe", data={"csrf": csrf_of(page.text), "name": "Ann", "email": "ann@example.org",
                                     "tz": "Europe/Paris", "consent": "yes", "website": "", "form": "back-pain"})
    link = confirm_link(next(iter(outbox_messages(runtime).values())))
    assert "receiving educational emails" not in patient.get(link).text
    done = confirm(patient, runtime)
    assert "is confirmed on the mailing list" in done and "will now receive" not in done

    with runtime.sessions.begin() as s:  # published: the warning goes
        from campaigns import service
        from drip.models import Campaign
        service.set_status(s, s.scalar(select(Campaign).where(Campaign.slug == "back-pain-series")), "published")
    assert 'id="signup-warning"' not in staff_client.get("/staff/campaigns").text

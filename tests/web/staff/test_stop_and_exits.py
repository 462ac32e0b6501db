"""Staff stop one patient's enrollment (with a reason) and set a campaign's exit conditions; the CLI too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from campaigns.enrollment import enroll
from drip.cli import main
from drip.models import CampaignExit, Delivery, Enrollment
from tests.factories import make_campaign, make_subscriber
from tests.web.seed import T0
from tests.web.staff.conftest import post_form


@pytest.fixture
def patient(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, "onboarding", n_items=2, every=timedelta(days=1))
        sub = make_subscriber(s, "ann@example.org", name="Ann")
        enroll(s, sub, c, T0, clinic_tz="UTC")
        return sub.id


def test_staff_stop_a_patient_with_a_reason(runtime, staff, patient):
    page = f"/staff/subscribers/{patient}"
    assert 'id="enrollments"' in staff.get(page).text
    r = post_form(staff, page, f"{page}/stop", data={"campaign": "onboarding", "reason": "booked <by phone>"})
    assert r.status_code == 303
    html = staff.get(page).text
    assert "no longer gets" in html and "3 scheduled emails cancelled" in html
    assert "Stopped “Acupuncture basics”" in html and "booked &lt;by phone&gt;" in html
    assert 'id="enrollments"' not in html
    with runtime.sessions() as s:
        e = s.scalar(select(Enrollment))
        assert (e.state, e.exit_reason) == ("exited", "booked <by phone>")
        assert set(s.scalars(select(Delivery.status))) == {"cancelled"}


def test_staff_stop_needs_csrf_and_a_reason(runtime, staff, patient):
    page = f"/staff/subscribers/{patient}"
    assert staff.post(f"{page}/stop", data={"campaign": "onboarding", "reason": "x"},
                      follow_redirects=False).status_code == 403
    post_form(staff, page, f"{page}/stop", data={"campaign": "onboarding", "reason": "  "})
    assert "a reason is needed" in staff.get(page).text
    with runtime.sessions() as s:
        assert s.scalar(select(Enrollment.state)) == "active"


def test_staff_set_exit_conditions_on_the_campaign_page(runtime, staff, patient):
    page = "/staff/campaigns/onboarding"
    r = post_form(staff, page, f"{page}/exits", data={"action": "add", "kind": "event", "value": "appointment_booked"})
    assert r.status_code == 303
    html = staff.get(page).text
    assert "Exit on event “appointment_booked”" in html
    post_form(staff, page, f"{page}/exits", data={"action": "add", "kind": "sideways", "value": "x"})
    assert "unknown exit condition" in staff.get(page).text
    post_form(staff, page, f"{page}/exits", data={"action": "remove", "kind": "event", "value": "appointment_booked"})
    with runtime.sessions() as s:
        assert s.scalar(select(CampaignExit.id)) is None


def run(capsys, *argv):
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def test_cli_stop_and_exits(runtime, patient, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIP_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("DRIP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIP_CONFIG", str(tmp_path / "absent.toml"))
    code, out, err = run(capsys, "exits", "add", "onboarding", "event", "appointment_booked")
    assert code == 0 and "exit on event “appointment_booked”" in out, err
    code, out, _ = run(capsys, "exits", "list", "onboarding")
    assert "event\tappointment_booked" in out
    code, _, err = run(capsys, "exits", "add", "onboarding", "sideways", "x")
    assert code == 2 and "unknown exit condition" in err
    code, _, err = run(capsys, "enrollments", "stop", "ann@example.org", "--campaign", "onboarding", "--reason", "")
    assert code == 2 and "reason" in err
    code, out, err = run(capsys, "enrollments", "stop", "ANN@example.org", "--campaign", "onboarding",
                         "--reason", "moved away")
    assert code == 0 and "3 scheduled email(s) cancelled" in out, err
    code, _, err = run(capsys, "enrollments", "stop", "ann@example.org", "--campaign", "onboarding", "--reason", "x")
    assert code == 2 and "no active enrollment" in err


def test_staff_set_a_patients_attributes(runtime, staff, patient):
    from subscribers.attributes import define_attribute, typed_values

    with runtime.sessions.begin() as s:
        define_attribute(s, "first_visit", "date", label="First visit")
        define_attribute(s, "slot", "choice", choices=["Morning", "Afternoon"])
    page = f"/staff/subscribers/{patient}"
    html = staff.get(page).text
    assert 'id="attributes"' in html and 'name="attr_first_visit" type="date"' in html
    r = post_form(staff, page, f"{page}/attributes", data={"attr_first_visit": "2027-01-12", "attr_slot": "Morning"})
    assert r.status_code == 303
    assert "Saved: first_visit, slot changed." in staff.get(page).text
    post_form(staff, page, f"{page}/attributes", data={"attr_first_visit": "soon"})
    assert "not a date" in staff.get(page).text
    with runtime.sessions() as s:
        assert typed_values(s, [patient])[patient] == {"first_visit": "2027-01-12", "slot": "Morning"}
    assert 'value="2027-01-12"' in staff.get(page).text

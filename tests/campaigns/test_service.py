from datetime import timedelta

import pytest
from sqlalchemy import select

from campaigns import service
from drip.errors import InputError, NotFoundError
from drip.models import Delivery, Enrollment, StepVersion, utcnow
from campaigns.enrollment import enroll
from tests.factories import make_campaign, make_draft, make_subscriber


def test_create_campaign_stores_steps_with_delays(runtime):
    with runtime.sessions.begin() as s:
        c = service.create_campaign(s, make_draft(3), "onboarding", every=timedelta(days=2), start=timedelta(hours=1))
        assert [st.position for st in c.steps] == [1, 2, 3, 4]
        assert [st.delay_minutes for st in c.steps] == [60, 60 + 2880, 60 + 2 * 2880, 60 + 3 * 2880]
        assert c.status == "draft"
        assert [st.kind for st in c.steps] == ["intro", "item", "item", "item"]
        assert len({st.slug for st in c.steps}) == 4


@pytest.mark.parametrize("slug", ["Bad Slug", "", "-x", "a/b", "x" * 81])
def test_bad_slug_is_refused_and_nothing_written(runtime, slug):
    with pytest.raises(InputError):
        with runtime.sessions.begin() as s:
            service.create_campaign(s, make_draft(), slug)
    with runtime.sessions() as s:
        assert service.list_campaigns(s) == []


def test_duplicate_slug_and_bad_window_refused(runtime):
    with runtime.sessions.begin() as s:
        service.create_campaign(s, make_draft(), "onboarding")
    with pytest.raises(InputError, match="already exists"):
        with runtime.sessions.begin() as s:
            service.create_campaign(s, make_draft(), "onboarding")
    with pytest.raises(InputError):
        with runtime.sessions.begin() as s:
            service.create_campaign(s, make_draft(), "other", window="someday 9-5")


def test_status_transitions(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, publish=False)
        with pytest.raises(InputError, match="cannot move"):
            service.set_status(s, c, "paused")
        service.set_status(s, c, "published")
        service.set_status(s, c, "paused")
        service.set_status(s, c, "published")
        service.set_status(s, c, "archived")
        with pytest.raises(InputError):
            service.set_status(s, c, "published")


def test_edit_draft_in_place_but_published_makes_new_version(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, publish=False)
        v = service.edit_step(s, c, 2, service.StepEdit(subject="Edited in draft"))
        assert v.version == 1 and v.subject == "Edited in draft"
        service.set_status(s, c, "published")
        v2 = service.edit_step(s, c, 2, service.StepEdit(subject="Fixed\r\nBcc: x@evil.test", body="New body"))
        assert v2.version == 2
        assert "\n" not in v2.subject and "\r" not in v2.subject
        assert service.latest_versions(s, [c.steps[1].id])[c.steps[1].id].id == v2.id
        assert len(s.scalars(select(StepVersion).where(StepVersion.step_id == c.steps[1].id)).all()) == 2


def test_edit_unknown_step_and_empty_subject(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s)
        with pytest.raises(NotFoundError):
            service.edit_step(s, c, 99, service.StepEdit(subject="x"))
        with pytest.raises(InputError, match="subject"):
            service.edit_step(s, c, 1, service.StepEdit(subject="   "))


def test_archive_cancels_pending_and_ends_enrollments(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s)
        sub = make_subscriber(s, "a@example.org")
        enroll(s, sub, c, utcnow(), clinic_tz="UTC")
        service.set_status(s, c, "archived")
    with runtime.sessions() as s:
        assert {d.status for d in s.scalars(select(Delivery))} == {"cancelled"}
        assert s.scalar(select(Enrollment.state)) == "cancelled"


def test_unknown_campaign(runtime):
    with runtime.sessions() as s:
        with pytest.raises(NotFoundError, match="no campaign 'nope'"):
            service.get_campaign(s, "nope")


@pytest.mark.parametrize("subject", [
    "Your back pain: what to do",
    "You have arthritis? Try this",
    "Reminder: appointment on Friday at 3pm",
    "About your diagnosis",
])
def test_subjects_about_the_reader_or_their_care_are_refused(runtime, subject):
    with runtime.sessions.begin() as s:
        c = make_campaign(s)
        with pytest.raises(InputError, match="subject"):
            service.edit_step(s, c, 2, service.StepEdit(subject=subject))
        v = service.edit_step(s, c, 2, service.StepEdit(subject="How acupuncture eases back pain"))
        assert v.subject == "How acupuncture eases back pain"

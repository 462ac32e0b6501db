"""Minimum necessary to the provider: what SendGrid may group by or echo back is opaque.

A campaign's slug or a step's title ("acupuncture-pain-relief", "Mechanism 1") tells the provider
what a patient is likely treated for; categories, custom args and headers carry ids only.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from campaigns.enrollment import enroll
from delivery.backends.sendgrid import SendGridBackend
from delivery.dispatcher import Dispatcher
from delivery.types import GENERIC_CATEGORIES, provider_categories
from drip.models import Broadcast, Campaign, Step
from tests.delivery.sendgrid_mock import API_KEY, FakeTime, SendGridMock
from tests.factories import make_campaign, make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


def _metadata(body: dict) -> str:
    """Everything in a request that is not the email itself: what the provider files it under."""
    parts = {"categories": body.get("categories"), "custom_args": body.get("custom_args"),
             "headers": body.get("headers"),
             "personalizations": [{k: v for k, v in p.items() if k in ("custom_args", "headers")}
                                  for p in body["personalizations"]]}
    return json.dumps(parts)


def test_sendgrid_requests_carry_ids_not_slugs_or_titles(sqlite_runtime):
    rt = sqlite_runtime
    with rt.sessions.begin() as s:
        c = make_campaign(s, "acupuncture-pain-relief", n_items=2, every=timedelta(hours=1))
        for i in range(3):
            enroll(s, make_subscriber(s, f"p{i}@example.org", name=f"P{i}"), c, T0, clinic_tz="UTC")
        campaign_id = c.id
        steps = s.execute(select(Step.id, Step.slug).where(Step.campaign_id == campaign_id)).all()
        title = s.get(Campaign, campaign_id).title
    fake = FakeTime()
    settings = rt.settings.with_(sendgrid_api_key=API_KEY)
    with SendGridMock() as mock:
        backend = SendGridBackend(settings.with_(sendgrid_host=mock.url), sleep=fake.sleep, clock=fake.monotonic,
                                  wall_clock=fake.wall, rng=random.Random(1))
        clock = {"now": T0}
        d = Dispatcher(rt, backend, clock=lambda: clock["now"])
        while (due := d.store.next_due_at()) is not None:
            clock["now"] = max(clock["now"], due)
            d.tick()
        bodies = [r.json for r in mock.requests]
    assert bodies, "nothing was sent"
    sent_categories = {cat for b in bodies for cat in b.get("categories", [])}
    assert sent_categories == {f"c{campaign_id}"} | {f"c{campaign_id}:s{sid}" for sid, _ in steps}
    leaked = [word for b in bodies for word in ["acupuncture", "pain-relief", title, *(slug for _, slug in steps)]
              if word and word.lower() in _metadata(b).lower()]
    assert leaked == []


def test_newsletter_categories_are_opaque_too():
    assert provider_categories(broadcast_id=7) == ("newsletter", "n7")
    assert provider_categories(campaign_id=3, step_id=40) == ("c3", "c3:s40")
    assert provider_categories(campaign_id=3) == ("c3",)


def test_the_generic_kinds_drip_sends_pass_the_payload_check():
    """The confirmation email and a staff test email use fixed kinds; the payload check must let
    them through (a refused category fails the email)."""
    from delivery.backends.sendgrid_payload import build_payload
    from tests.delivery.sendgrid_mock import message

    for kind in GENERIC_CATEGORIES:
        payload = build_payload([message(1, categories=(kind,))])
        assert not payload.rejected and payload.body["categories"] == [kind]

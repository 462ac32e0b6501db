"""Small builders for tests: a campaign without the splitter, subscribers without the CSV path."""

from __future__ import annotations

from datetime import datetime, timedelta

from campaigns import service
from campaigns.draft import Draft, DraftStep
from drip.models import Subscriber


def make_draft(n_items: int = 3, title: str = "Acupuncture basics") -> Draft:
    steps = [DraftStep("intro", "", "Welcome", "Welcome to acupuncture basics", "An introduction paragraph.")]
    steps += [
        DraftStep("item", "How it works", f"Mechanism {i}", f"How acupuncture works, part {i}", f"Body of mechanism {i}.")
        for i in range(1, n_items + 1)
    ]
    return Draft(title=title, steps=steps)


def make_campaign(session, slug: str = "onboarding", *, n_items: int = 3, every=timedelta(days=2),
                  window: str = "daily 00:00-23:59", publish: bool = True):
    c = service.create_campaign(session, make_draft(n_items), slug, every=every, window=window)
    if publish:
        service.set_status(session, c, "published")
    return c


def make_subscriber(session, email: str, *, name: str = "", tz: str | None = None, status: str = "active",
                    now: datetime | None = None) -> Subscriber:
    sub = Subscriber(email=email, email_key=email.lower(), name=name, tz=tz, status=status)
    session.add(sub)
    session.flush()
    return sub

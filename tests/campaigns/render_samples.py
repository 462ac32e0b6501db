"""Builders shared by the renderer and preview tests (hand-made content, no splitter needed)."""

from __future__ import annotations

from dataclasses import replace

from campaigns.draft import Draft, DraftStep
from campaigns.render import EmailContent, Recipient

BODY = (
    "Acupuncture triggers the release of endorphins, the body's natural painkillers.\n"
    "These chemicals help reduce pain.\n"
    "\n"
    "- Reduces pain\n"
    "- Promotes a sense of *well-being*\n"
    "\n"
    "Research published in the *Journal of Pain* supports this."
)


def content(**changes) -> EmailContent:
    base = EmailContent(
        key="step:1:v1",
        title="Release of Endorphins",
        subject="How acupuncture releases endorphins",
        preheader="The body's own painkillers, explained.",
        body=BODY,
        section="How Acupuncture Works",
        kind="item",
        position=3,
        total=13,
        campaign_title="Acupuncture for Pain Relief",
    )
    return replace(base, **changes)


def recipient(**changes) -> Recipient:
    base = Recipient(
        name="Maria Lopez",
        email="maria@example.com",
        unsubscribe_url="https://clinic.test/u/tok123.sig?c=1&d=2",
        preferences_url="https://clinic.test/preferences/tok123.sig",
    )
    return replace(base, **changes)


def draft() -> Draft:
    return Draft(
        title="Acupuncture for Pain Relief",
        steps=[
            DraftStep("intro", "", "Acupuncture for Pain Relief", "Welcome: acupuncture and pain", "Pain limits daily life."),
            DraftStep("item", "How Acupuncture Works", "Release of Endorphins", "Endorphins, explained", BODY),
            DraftStep("item", "How Acupuncture Works", "Improved Blood Circulation", "Circulation and healing",
                      "- Better blood flow reduces inflammation."),
            DraftStep("outro", "", "Integrating Acupuncture", "Acupuncture alongside your care",
                      "Please contact the office with any questions!"),
        ],
    )

"""Newsletter wording that addresses the reader's own health is found before scheduling."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from campaigns.privacy import personal_health_wording


@pytest.mark.parametrize("text", [
    "Please bring your diagnosis letter.",
    "We will review your treatment on Tuesday.",
    "Your recent MRI shows progress.",
    "How is your back pain this week?",
    "Since you were diagnosed with arthritis, ...",
    "You have been prescribed rest.",
    "If you suffer from migraines, ...",
    "Remember your next appointment.",
])
def test_personal_wording_is_found(text):
    (hit,) = personal_health_wording(text)
    assert hit.line == 1 and hit.phrase.lower() in text.lower()


@pytest.mark.parametrize("text", [
    "A diagnosis of sciatica usually starts with a physical exam.",
    "Treatment often combines acupuncture and gentle exercise.",
    "Stretching helps your overall health.",
    "Our clinic is closed on Monday; the team wishes you a happy new year.",
    "Patients with chronic pain may benefit from heat.",
])
def test_educational_wording_is_not(text):
    assert personal_health_wording(text) == []


def test_hits_name_their_line_and_are_bounded():
    text = "Hello.\n" + "About your diagnosis.\n" * 50
    hits = personal_health_wording(text, limit=3)
    assert [h.line for h in hits] == [2, 3, 4]
    assert "line 2" in str(hits[0]) and "your diagnosis" in str(hits[0])


@given(st.text(max_size=2000))
def test_any_text_is_checked_without_error(text):
    hits = personal_health_wording(text)
    assert len(hits) <= 10 and all(h.phrase for h in hits)

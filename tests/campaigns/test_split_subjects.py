"""Subjects and preheaders: topic wording from the title, short, one line, never about the reader's health."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.draft import DraftStep
from campaigns.subjects import (
    CONDITION_WORDS, MAX_PREHEADER, MAX_SUBJECT, about_reader, preheader_for, subject_for, topic_of,
)

DOC = "Acupuncture for Pain Relief and Muscle Spasm"
HOW = "How Acupuncture Works for Pain Relief and Muscle Spasm"
READER_HEALTH = re.compile(
    rf"\byours?\b(?:\W+\w+){{0,2}}?\W+(?:{'|'.join(CONDITION_WORDS)})\b|\byou (?:have|suffer)\b", re.I
)


@pytest.mark.parametrize(
    "title, section, subject",
    [
        ("Release of Endorphins", HOW, "How acupuncture works: release of endorphins"),
        ("Chronic Pain", "Types of Pain and Muscle Spasms", "Acupuncture and chronic pain: what to know"),
        ("Muscle Spasms", "Types of Pain", "Acupuncture and muscle spasms: what to know"),
        ("TMJ Pain", "Conditions", "Acupuncture and TMJ pain: what to know"),
        ("Post-Herpetic Neuralgia", "Conditions", "Acupuncture and post-herpetic neuralgia: what to know"),
        ("Bell's Palsy", "Conditions", "Acupuncture and Bell's palsy: what to know"),
        ("Acupuncture and Sleep", "Benefits", "Acupuncture and sleep: what to know"),  # topic already named
        ("", "Scientific Evidence", "Scientific Evidence"),  # outro: its heading
        ("", "", DOC),  # intro: the document title
    ],
)
def test_subject_wording(title, section, subject):
    assert subject_for(title, section, DOC) == subject


@pytest.mark.parametrize(
    "title",
    ["Your Back Pain", "If You Have Migraines", "Managing Your Chronic Pain Condition", "When you suffer from insomnia",
     "You’re suffering from stress"],
)
def test_reader_directed_titles_become_impersonal(title):
    subject = subject_for(title, "Conditions", DOC)
    assert not about_reader(subject)
    assert not re.search(r"\byours?\b", subject, re.I)
    # the topic leads where it fits in 60 characters; "Managing chronic pain condition: what to know" otherwise
    assert subject.startswith(("Acupuncture and ", "Managing chronic pain condition"))


def test_topic_is_the_lead_noun_phrase_or_nothing():
    assert topic_of(DOC) == "Acupuncture"
    assert topic_of("Cupping Therapy: A Guide") == "Cupping Therapy"
    assert topic_of("Understanding Acupuncture") == ""  # a gerund is not a topic
    assert topic_of("The Benefits of Massage") == ""
    assert subject_for("Insomnia", "Conditions", "Understanding Acupuncture") == "Insomnia: what to know"


def test_long_subjects_are_cut_at_a_word_to_the_limit():
    long_title = "Very Long Title About " + " ".join(["Something"] * 20)
    subject = subject_for(long_title, "Conditions", DOC)
    assert len(subject) <= MAX_SUBJECT and subject.endswith("…") and " Somethin…" not in subject
    assert subject_for("", "Scientific Evidence Supporting Acupuncture for Pain Relief and Muscle Spasms", DOC) == (
        "Scientific Evidence Supporting Acupuncture for Pain Relief"  # 76 characters: cut at a clause, no "…"
    )


def test_header_injection_is_impossible():
    subject = subject_for("Sleep\r\nBcc: victim@example.com", "Conditions\n", "Guide\rX")
    assert "\r" not in subject and "\n" not in subject


def step(text: str, title: str = "Sleep") -> DraftStep:
    return DraftStep("item", "Conditions", title, "s", text)


def test_preheader_is_the_first_whole_sentence_not_a_fragment_or_bullet():
    assert preheader_for(step("nervous system\n\nSleep matters a lot. More text follows.")) == "Sleep matters a lot."
    assert preheader_for(step("- Rest is restorative for everyone.\n- Second.")) == "Rest is restorative for everyone."


def test_preheader_skips_sentences_about_the_reader_and_falls_back_to_the_title():
    text = "If you have insomnia, call. Sleep is studied widely today."
    assert preheader_for(step(text)) == "Sleep is studied widely today."
    assert preheader_for(step("Your pain matters.", title="Pain Science")) == "Pain Science"


def test_preheader_is_short_and_one_line():
    text = "Word " * 60 + "end.\nSecond line."
    pre = preheader_for(step(text))
    assert len(pre) <= MAX_PREHEADER and "\n" not in pre and pre.endswith("…")


health_phrases = st.sampled_from(
    ["your pain", "Your Back Pain", "you have arthritis", "YOUR CONDITION", "your chronic neck pain", "you suffer from",
     "if you have migraines", "your symptoms", "you're suffering"]
)
messy_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=120)


@settings(max_examples=300, deadline=None)
@given(
    title=st.one_of(messy_text, st.tuples(messy_text, health_phrases, messy_text).map(" ".join)),
    section=st.one_of(messy_text, st.tuples(health_phrases, messy_text).map(" ".join)),
    doc_title=st.one_of(st.just(DOC), messy_text, st.tuples(health_phrases, messy_text).map(" ".join)),
)
def test_every_subject_is_one_short_line_and_never_about_the_reader(title, section, doc_title):
    subject = subject_for(title, section, doc_title)
    assert subject and len(subject) <= MAX_SUBJECT
    assert "\r" not in subject and "\n" not in subject
    assert not any(0 <= ord(c) < 32 for c in subject)
    assert not READER_HEALTH.search(subject)


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(messy_text, st.tuples(health_phrases, messy_text).map(" ".join)), title=messy_text)
def test_every_preheader_is_one_line_and_never_about_the_reader(text, title):
    pre = preheader_for(step(text, title=title))
    assert len(pre) <= MAX_PREHEADER and "\n" not in pre and "\r" not in pre
    assert not READER_HEALTH.search(pre)


@pytest.mark.parametrize("doc_title", ["5 Tips for Better Sleep", "News from the Clinic", "Tips", "FAQ: Acupuncture"])
def test_a_kind_of_post_is_not_a_topic_glued_to_items(doc_title):
    """'Tips and hydration: what to know' is a phrase no one would write."""
    assert topic_of(doc_title) == ""
    assert subject_for("Hydration", "Tips", doc_title, "Drink water through the day.") == "Hydration: what to know"


def test_the_topic_leads_only_where_the_step_speaks_of_it():
    body = "Walking after meals steadies blood sugar."
    assert subject_for("Walk after meals", "Habits", "Yoga for Beginners", body) == "Walk after meals: what to know"
    assert subject_for("Breathing", "Habits", "Yoga for Beginners", "Yoga breathing calms.") == (
        "Yoga and breathing: what to know")


@pytest.mark.parametrize("section", ["Share this:", "Leave a comment", "Related posts"])
def test_furniture_is_never_a_subject_or_a_heading(section):
    from campaigns.subjects import heading_for

    assert subject_for("", section, DOC) == DOC
    assert heading_for("outro", section, DOC) == "Acupuncture: putting it together"
    assert heading_for("intro", section, DOC) == "An introduction to acupuncture"


def test_an_intro_or_outro_under_its_own_heading_is_headed_by_it():
    from campaigns.subjects import heading_for

    assert heading_for("outro", "Integrating Acupuncture with Conventional Treatments", DOC) == (
        "Integrating Acupuncture with Conventional Treatments")
    assert heading_for("intro", "", "Understanding Acupuncture") == "An introduction"

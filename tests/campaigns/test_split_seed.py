"""The issue's acceptance checks on the seed article, as plain text and with CRLF line ends."""

from __future__ import annotations

import pytest

from campaigns.documents import parse_bytes
from campaigns.split import split_document, split_file
from tests.campaigns.split_helpers import draft_words, words

MECHANISMS = "How Acupuncture Works for Pain Relief and Muscle Spasm"
TYPES = "Types of Pain and Muscle Spasms"
ITEMS = [
    ("Release of Endorphins", MECHANISMS, "Acupuncture triggers the release of endorphins"),
    ("Improved Blood Circulation", MECHANISMS, "The insertion of needles"),
    ("Nervous System Regulation", MECHANISMS, "Acupuncture influences the central nervous system"),
    ("Reduction of Inflammation", MECHANISMS, "By modulating inflammatory responses"),
    ("Muscle Relaxation", MECHANISMS, "Acupuncture can relieve muscle tension"),
    ("Chronic Pain", TYPES, "Conditions like arthritis, fibromyalgia"),
    ("Acute Pain", TYPES, "Injuries, surgical recovery"),
    ("Neuropathic Pain", TYPES, "Conditions like sciatica"),
    ("Menstrual Pain", TYPES, "Many women find relief"),
    ("Muscle Spasms", TYPES, "Muscle spasms, whether due to overuse"),
]


@pytest.fixture(scope="module", params=["lf", "crlf"])
def draft(request, seed_path):
    data = seed_path.read_bytes()
    if request.param == "lf":
        return split_file(seed_path)
    return split_document(parse_bytes(data.replace(b"\n", b"\r\n"), ".txt", "seed"), name="seed")


def test_title_is_the_article_title_not_the_stray_first_line(draft):
    assert draft.title == "Acupuncture for Pain Relief and Muscle Spasm"


def test_exactly_ten_items_in_order_with_their_sections(draft):
    assert [(s.title, s.section) for s in draft.items] == [(t, sec) for t, sec, _ in ITEMS]


def test_each_item_has_its_own_body_only(draft):
    items = draft.items
    for k, ((title, _, start), step) in enumerate(zip(ITEMS, items)):
        assert step.text.startswith(start), title
        assert "\n" not in step.text  # one body paragraph each in the seed
        assert not step.text.startswith("-")  # the "- " marker is layout, not text
        for other_title, _, other_start in ITEMS[k + 1:k + 2]:
            assert other_title not in step.text and other_start not in step.text
        assert TYPES not in step.text and "Scientific Evidence" not in step.text


def test_numbering_gap_loses_and_merges_nothing(draft):
    menstrual, spasms = draft.items[8], draft.items[9]
    assert menstrual.text.endswith("through regular acupuncture treatments.")
    assert spasms.text.endswith("improving overall muscle function.")


def test_intro_keeps_the_stray_line_and_the_introduction(draft):
    intro = draft.steps[0]
    assert intro.kind == "intro" and intro.section == "" and intro.title == ""
    assert intro.text.startswith("nervous system\n\nPain and muscle spasms can significantly impact")
    assert [s.kind for s in draft.steps].count("intro") == 1


def test_closing_sections_are_outro_steps_and_keep_every_line(draft):
    outros = [s for s in draft.steps if s.kind == "outro"]
    assert [s.section for s in outros] == [
        "Scientific Evidence Supporting Acupuncture for Pain Relief and Muscle Spasms",
        "Integrating Acupuncture with Conventional Treatments",
    ]
    assert outros[0].text.startswith("Numerous studies and clinical trials")
    assert "Acupuncture offers a natural and effective approach" in outros[1].text
    assert outros[1].text.endswith("Please contact the office with any questions!")
    assert draft.steps[-1] is outros[-1]


def test_no_word_of_the_seed_is_lost_or_duplicated(draft, seed_path):
    source = seed_path.read_text(encoding="utf-8")
    assert draft_words(draft) == words(source) - words("1 2 3 4 5 1 2 3 5 6")  # minus the list numbers


def test_every_step_has_a_subject_and_preheader(draft):
    for step in draft.steps:
        assert step.subject and len(step.subject) <= 78 and "\n" not in step.subject
        assert step.preheader and "\n" not in step.preheader
    assert draft.items[0].subject == "How acupuncture works: release of endorphins"
    assert draft.items[5].subject == "Acupuncture and chronic pain: what to know"

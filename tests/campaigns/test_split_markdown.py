"""Markdown documents: CommonMark structure via markdown-it-py, plus hand-typed lists in paragraphs."""

from __future__ import annotations

from pathlib import Path

from campaigns.documents import parse_bytes, read_document
from campaigns.split import split_document, split_file
from tests.campaigns.split_helpers import draft_words, words

FIXTURE = Path(__file__).parent / "fixtures" / "sleep-support.md"


def split_md(text: str):
    return split_document(parse_bytes(text.encode(), ".md", "doc.md"), name="doc")


def test_fixture_items_sections_and_title():
    draft = split_file(FIXTURE)
    assert draft.title == "Acupuncture and Better Sleep"  # the h1, not the front matter title
    assert [(s.section, s.title) for s in draft.items] == [
        ("How Treatment Supports Rest", "Calming the Nervous System"),
        ("How Treatment Supports Rest", "Regulating Melatonin"),  # "### 2. Regulating Melatonin -"
        ("How Treatment Supports Rest", "Easing Muscle Tension"),  # numbered 4 after 2
        ("Common Sleep Complaints", "Insomnia"),
        ("Common Sleep Complaints", "Restless legs"),
        ("Common Sleep Complaints", "Night sweats"),
    ]


def test_fixture_bodies_are_the_items_own():
    items = split_file(FIXTURE).items
    assert items[0].text == (
        "Treatment may shift the body towards its rest and digest state.\n\n"
        "Some studies measured heart rate variability before and after sessions."
    )
    assert items[2].text == "Relaxed muscles make it easier to fall asleep."
    assert [s.text for s in items[3:]] == [
        "trouble falling or staying asleep for weeks at a time.",
        "an urge to move the legs in the evening.",
        "waking up hot, often around menopause.",
    ]


def test_fixture_plain_list_and_closing_section_are_outros():
    draft = split_file(FIXTURE)
    outros = [s for s in draft.steps if s.kind == "outro"]
    assert outros[0].text == "Sleep hygiene still matters:\n\n- keep a regular bedtime\n- avoid screens late at night"
    assert outros[1].section == "A Note on Safety"


def test_front_matter_is_metadata_and_its_title_a_hint():
    doc = read_document(FIXTURE)
    assert doc.title_hint == "Better Sleep | Riverside Clinic"
    assert "2024" not in " ".join(b.text for b in doc.blocks)
    draft = split_md('---\ntitle: "Sleep Notes"\n---\n\n- **Insomnia:** trouble sleeping.\n- **Snoring:** noise.\n')
    assert draft.title == "Sleep Notes"


def test_fixture_conserves_words_except_markup_and_front_matter():
    text = FIXTURE.read_text()
    body = text.split("---\n", 2)[2]
    assert draft_words(split_file(FIXTURE)) == words(body) - words("1 2 4")


def test_commonmark_paren_lists_nested_paragraphs_and_typed_bullets():
    draft = split_md(
        "# Guide\n\nIntro.\n\n1) Endorphins\n\n   Natural painkillers.\n"
        "\n   More about them.\n\n2) Circulation\n\n   Better flow.\n\n"
        "• Insomnia: trouble sleeping.\n• Anxiety: constant worry.\n"
    )
    assert [s.title for s in draft.items] == ["Endorphins", "Circulation", "Insomnia", "Anxiety"]
    assert draft.items[0].text == "Natural painkillers.\n\nMore about them."


def test_emphasis_and_links_keep_their_words():
    draft = split_md("# Guide\n\nIntro.\n\n- **Sleep:** see [the *study*](https://x.test) `p6` point.\n")
    assert draft.items[0].text == "see the study p6 point."


def test_raw_html_blocks_lose_their_scripts_not_their_text():
    draft = split_md("# Guide\n\n<div>Kept words.</div>\n\n<script>\n"
                     "var hidden = 1;\n</script>\n\n- **Sleep:** rest.\n")
    assert draft.steps[0].text == "Kept words."
    assert "hidden" not in " ".join(s.text for s in draft.steps)


def test_seed_read_as_markdown_gives_the_same_items(seed_path):
    txt = split_file(seed_path)
    md = split_document(parse_bytes(seed_path.read_bytes(), ".md", "seed.md"), name="seed")
    assert [(s.section, s.title, s.text) for s in md.items] == [(s.section, s.title, s.text) for s in txt.items]
    assert md.title == txt.title

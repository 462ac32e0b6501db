"""Plain-text splitting rules: markers, titles, bodies, headings, and what is not an item."""

from __future__ import annotations

import pytest

from campaigns.documents import DocumentError, parse_bytes
from campaigns.split import clean_title, split_document
from tests.campaigns.split_helpers import draft_words, words


def split(text: str, suffix: str = ".txt", name: str = "fallback-name"):
    return split_document(parse_bytes(text.encode("utf-8"), suffix, "doc" + suffix), name=name, where="doc" + suffix)


def titles(draft) -> list[str]:
    return [s.title for s in draft.items]


def test_paren_numbers_gaps_bullets_and_one_line_titles():
    draft = split(
        "Digestive Health\n\nA short overview.\n\n"
        "1) Bloating - Often eased when the body is calmer.\n"
        "2) Nausea: acupressure at the wrist is well studied.\n"
        "7) Appetite:\nIt can settle as stress falls.\n"
        "• Heartburn – Eating earlier in the evening helps.\n"
        "* Reflux: smaller meals help.\n"
    )
    assert titles(draft) == ["Bloating", "Nausea", "Appetite", "Heartburn", "Reflux"]
    assert [s.text for s in draft.items] == [
        "Often eased when the body is calmer.",
        "acupressure at the wrist is well studied.",
        "It can settle as stress falls.",
        "Eating earlier in the evening helps.",
        "smaller meals help.",
    ]


def test_title_on_one_line_body_on_the_next_without_a_colon():
    draft = split("Herbal Teas\n\nSome notes.\n\n1. Chamomile Tea\n"
                  "Calming in the evening.\n2. Peppermint Tea\nGood after meals.\n")
    assert titles(draft) == ["Chamomile Tea", "Peppermint Tea"]
    assert [s.text for s in draft.items] == ["Calming in the evening.", "Good after meals."]


def test_bullet_lines_under_a_numbered_title_are_its_body():
    draft = split(
        "Guide\n\nIntro text.\n\n1. Stress Relief:\n- Lowers stress hormones.\n- Note: results vary.\n- Short point\n"
        "2. Better Sleep:\n\n- People often sleep better.\n"
    )
    assert titles(draft) == ["Stress Relief", "Better Sleep"]
    assert draft.items[0].text == "- Lowers stress hormones.\n- Note: results vary.\n- Short point"
    assert draft.items[1].text == "People often sleep better."


def test_title_without_colon_followed_by_a_paragraph_is_an_item():
    draft = split("Guide\n\nIntro text.\n\n- Insomnia\n\nTrouble sleeping for weeks.\n"
                  "\n- Anxiety\n\nWorry that will not settle.\n")
    assert titles(draft) == ["Insomnia", "Anxiety"]
    assert draft.items[1].text == "Worry that will not settle."


def test_a_plain_list_of_short_entries_is_text_not_items():
    draft = split(
        "Guide\n\nBring these:\n\n- a towel\n- water\n- Loose Clothes\n"
        "\nThen:\n\n1. Sleep: rest well after a session.\n"
    )
    assert titles(draft) == ["Sleep"]
    assert draft.steps[0].kind == "intro"
    assert draft.steps[0].text == "Bring these:\n\n- a towel\n- water\n- Loose Clothes\n\nThen:"


def test_a_document_that_is_only_a_plain_list_has_no_items():
    with pytest.raises(DocumentError, match="no items found") as err:
        split("Shopping\n\n- apples\n- pears\n- Bread\n")
    assert err.value.where == "doc.txt"


def test_paragraph_after_body_bullets_is_not_part_of_the_item():
    draft = split("Guide\n\nIntro.\n\n1. Pain Relief:\n- Eases sore muscles.\n"
                  "- Helps headaches.\n\nThanks for reading.\n")
    assert draft.items[0].text == "- Eases sore muscles.\n- Helps headaches."
    assert draft.steps[-1].kind == "outro" and draft.steps[-1].text == "Thanks for reading."


def test_inline_body_item_does_not_take_the_next_paragraph():
    draft = split("Guide\n\nIntro.\n\n- Insomnia: trouble sleeping.\n- Anxiety: constant worry.\n\nCall us to book.\n")
    assert draft.items[1].text == "constant worry."
    assert draft.steps[-1].text == "Call us to book."


def test_paragraphs_after_a_title_only_item_are_its_body_until_the_next_heading():
    draft = split(
        "Guide\n\nIntro.\n\nMechanisms\n\n1. Endorphins:\n\nFirst paragraph.\n\nSecond paragraph.\n\n"
        "2. Circulation:\n\nThird paragraph.\n\nConditions\n\n1. Back Pain: common and treatable.\n"
    )
    assert [s.text for s in draft.items] == [
        "First paragraph.\n\nSecond paragraph.", "Third paragraph.", "common and treatable.",
    ]
    assert [s.section for s in draft.items] == ["Mechanisms", "Mechanisms", "Conditions"]


def test_a_short_first_body_line_is_not_taken_for_a_heading():
    draft = split("Guide\n\nIntro.\n\n1. Endorphins:\n\nNatural Painkillers\n\n2. Circulation:\n\nMore blood flow.\n")
    assert [s.text for s in draft.items] == ["Natural Painkillers", "More blood flow."]
    assert {s.section for s in draft.items} == {""}


@pytest.mark.parametrize(
    "line, is_heading",
    [
        ("Types of Pain", True),
        ("2024 Update on Research", True),
        ("nervous system", False),  # starts lower case: a fragment, not a heading
        ("This is a sentence.", False),
        ("Here are the common types:", False),  # a lead-in
        ("Hello, world,", False),
        ("One Two Three Four Five Six Seven Eight Nine Ten Eleven Twelve Thirteen Fourteen Fifteen", False),
    ],
)
def test_which_lines_are_headings(line, is_heading):
    draft = split(f"Guide\n\nIntro.\n\n{line}\n\n1. Sleep: rest well.\n")
    assert (draft.items[0].section == line) is is_heading
    if not is_heading:
        assert line in draft.steps[0].text  # kept as text


def test_empty_heading_is_joined_to_the_next_and_a_last_line_heading_is_text():
    draft = split("Guide\n\nIntro.\n\nConditions We Treat\n\nPain\n\n1. Back Pain: common.\n\nSee You Soon\n")
    assert draft.items[0].section == "Conditions We Treat — Pain"
    assert draft.steps[-1].kind == "outro" and draft.steps[-1].text == "See You Soon"


def test_underlined_and_hash_headings_in_plain_text():
    draft = split("Sleep Guide\n==========\n\nIntro.\n\n## Common Problems\n\n"
                  "1. Insomnia: trouble sleeping.\n\nOther Notes\n-----------\n\nRest well.\n")
    assert draft.title == "Sleep Guide"
    assert draft.items[0].section == "Common Problems"
    assert draft.steps[-1].section == "Other Notes" and draft.steps[-1].text == "Rest well."


def test_indented_bullets_nest_under_the_entry_above():
    draft = split("Teas\n\nIntro.\n\n* Chamomile\n  Calming tea.\n* Peppermint\n"
                  "  Good after meals.\n    * Avoid with reflux.\n* Ginger: Warming.\n")
    assert titles(draft) == ["Chamomile", "Peppermint", "Ginger"]
    assert draft.items[1].text == "Good after meals.\n\nAvoid with reflux."


def test_an_entry_holding_titled_entries_is_a_section():
    draft = split(
        "Guide\n\nIntro.\n\n- Mechanisms\n  - Endorphins: natural painkillers.\n  - Circulation: better blood flow.\n"
        "- Conditions\n  - Back Pain: very common.\n  - Neck Pain: often from desks.\n"
    )
    assert titles(draft) == ["Endorphins", "Circulation", "Back Pain", "Neck Pain"]
    assert [s.section for s in draft.items] == ["Mechanisms", "Mechanisms", "Conditions", "Conditions"]


def test_lead_in_text_of_a_later_section_is_an_intro_and_trailing_text_an_outro():
    draft = split(
        "Guide\n\nIntro.\n\nMechanisms\n\n1. Endorphins: painkillers.\n"
        "\nConditions\n\nCommon reasons people come in.\n\n"
        "1. Back Pain: very common.\n- Neck Pain: from desks.\n\n"
        "A closing thought.\n\nMore Reading\n\nAsk at reception.\n"
    )
    assert [(s.kind, s.section) for s in draft.steps] == [
        ("intro", ""), ("item", "Mechanisms"), ("intro", "Conditions"), ("item", "Conditions"),
        ("item", "Conditions"), ("outro", "Conditions"), ("outro", "More Reading"),
    ]


def test_title_falls_back_to_the_file_name_when_the_first_heading_holds_items():
    draft = split("Mechanisms\n\n1. Endorphins: painkillers.\n"
                  "\nConditions\n\n1. Back Pain: common.\n", name="pain-guide_2024")
    assert draft.title == "Pain guide 2024"
    assert [s.section for s in draft.items] == ["Mechanisms", "Conditions"]


def test_a_single_heading_is_the_title_even_when_items_follow():
    draft = split("Acupuncture Benefits\n\n1. Endorphins: painkillers.\n2. Circulation: blood flow.\n")
    assert draft.title == "Acupuncture Benefits" and {s.section for s in draft.items} == {""}


@pytest.mark.parametrize(
    "raw, clean",
    [("Release of Endorphins:", "Release of Endorphins"), ("Release of Endorphins -", "Release of Endorphins"),
     ("Release of Endorphins –  ", "Release of Endorphins"), ("Why does it help?", "Why does it help?"),
     ("Pain  relief\n(general)", "Pain relief (general)"), ("Blood-Flow", "Blood-Flow")],
)
def test_clean_title_keeps_wording_and_drops_trailing_colon_or_dash(raw, clean):
    assert clean_title(raw) == clean


def test_titles_keep_their_original_wording():
    draft = split("Guide\n\nIntro.\n\n1. TMJ & Jaw-Clenching (Bruxism) -\n"
                  "- Relaxes the jaw.\n2. mid-Back pain:\n- Eases tension.\n")
    assert titles(draft) == ["TMJ & Jaw-Clenching (Bruxism)", "mid-Back pain"]


def test_bold_markdown_typed_into_a_text_file():
    draft = split("Guide\n\nIntro.\n\n- **Insomnia:** trouble sleeping.\n- **Anxiety** - constant worry.\n")
    assert titles(draft) == ["Insomnia", "Anxiety"]
    assert [s.text for s in draft.items] == ["trouble sleeping.", "constant worry."]


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_line_endings_do_not_matter(newline):
    text = "Guide\n\nIntro.\n\n1. Sleep:\n- Rest well.\n2. Stress:\n- Breathe.\n".replace("\n", newline)
    draft = split(text)
    assert titles(draft) == ["Sleep", "Stress"] and [s.text for s in draft.items] == ["Rest well.", "Breathe."]
    assert all("\r" not in s.text for s in draft.steps)


def test_words_are_conserved_on_a_messy_document():
    text = (
        "stray words\n\nGuide To Herbs\n\nIntro sentence here.\n\nPart One\n\nSection A\n\n"
        "1) Alpha: one two.\n3) Beta - Three four.\n• Gamma\nfive six.\n\n- plain seven\n- plain eight\n\nTail nine.\n"
    )
    draft = split(text)
    assert draft_words(draft) == words(text) - words("1 3")


def test_fixture_text_file_with_underlines_paren_numbers_and_bullets():
    from pathlib import Path

    from campaigns.split import split_file

    draft = split_file(Path(__file__).parent / "fixtures" / "digestion-notes.txt")
    assert draft.title == "Digestive Health and Acupuncture"
    assert [(s.section, s.title, s.text) for s in draft.items] == [
        ("What Treatment Can Address", "Bloating", "Often eased when the body is calmer."),
        ("What Treatment Can Address", "Nausea", "acupressure at the wrist point P6 is well studied."),
        ("What Treatment Can Address", "Irregular Appetite", "Appetite can settle as stress levels fall."),
        ("What Treatment Can Address", "Heartburn", "may ease when meals are eaten slowly and earlier in the evening."),
        ("What Treatment Can Address", "Constipation", "Gentle treatment alongside fibre and water."),
    ]
    assert draft.steps[-1].kind == "outro"
    assert draft.steps[-1].text == "Before your first visit, please bring a list of current medicines."

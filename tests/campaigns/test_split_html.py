"""HTML pages: content found among page chrome with selectolax, lists and pasted paragraphs split alike."""

from __future__ import annotations

import html as html_lib
from pathlib import Path

import pytest

from campaigns.documents import DocumentError, parse_bytes, read_document
from campaigns.split import split_document, split_file

FIXTURE = Path(__file__).parent / "fixtures" / "headache-page.html"
NOISE = ["Home", "About Us", "Book Now", "cookies", "dataLayer", "Injected", "Related articles", "Privacy",
         "River Road", "font-family", "Not an item"]


def split_html(markup: str | bytes, name: str = "page"):
    data = markup.encode() if isinstance(markup, str) else markup
    return split_document(parse_bytes(data, ".html", "page.html"), name=name)


def all_text(draft) -> str:
    return "\n".join([draft.title] + [f"{s.section}\n{s.title}\n{s.text}" for s in draft.steps])


def test_fixture_items_from_strong_titles_nested_paragraphs_and_b_with_dash():
    draft = split_file(FIXTURE)
    assert draft.title == "Acupuncture for Headaches and Migraines"
    assert [(s.section, s.title) for s in draft.items] == [
        ("Types of Headache", "Tension Headaches"),
        ("Types of Headache", "Migraines"),
        ("Types of Headache", "Cluster Headaches"),
        ("What Happens in a Session", "First visit"),
        ("What Happens in a Session", "Follow-up visits"),
    ]
    assert draft.items[0].text == "feel like a tight band around the head and often follow long hours at a desk."
    assert draft.items[2].text == "Short, severe attacks around one eye that come in cycles."
    assert draft.items[3].text == "a conversation about your history and a gentle first treatment."


def test_fixture_page_chrome_is_not_text():
    text = all_text(split_file(FIXTURE))
    for noise in NOISE:
        assert noise not in text


def test_fixture_keeps_intro_and_closing_text_with_line_breaks():
    draft = split_file(FIXTURE)
    assert draft.steps[0].kind == "intro"
    assert draft.steps[0].text.startswith("Headaches are among the most common reasons people visit our clinic. This")
    assert draft.steps[-1].kind == "outro"
    assert draft.steps[-1].text == "Most people feel relaxed afterwards.\nSome feel tired for the rest of the day."


def test_title_hint_from_title_element_when_no_heading_fits():
    doc = read_document(FIXTURE)
    assert doc.title_hint == "Headache Relief"
    draft = split_html("<title>Sleep Tips – Clinic</title>"
                       "<ul><li><b>Insomnia:</b> rest.</li><li><b>Snoring:</b> noise.</li></ul>")
    assert draft.title == "Sleep Tips"


def test_seed_pasted_into_paragraphs_gives_the_same_items(seed_path):
    lines = [line for line in seed_path.read_text(encoding="utf-8").split("\n") if line.strip()]
    page = "<html><body><nav><a>Home</a></nav><div class='content'>" + "".join(
        f"<p>{html_lib.escape(line)}</p>" for line in lines
    ) + "</div><footer>Clinic address</footer></body></html>"
    draft = split_html(page)
    txt = split_file(seed_path)
    assert draft.title == txt.title
    assert [(s.section, s.title, s.text) for s in draft.items] == [(s.section, s.title, s.text) for s in txt.items]


def test_list_entry_with_break_between_title_and_body_and_nested_lists():
    draft = split_html(
        "<h1>Teas</h1><p>Intro.</p><ol><li>Chamomile<br>Calming in the evening.</li>"
        "<li><strong>Peppermint</strong><ul><li>Good after meals.</li><li>Avoid with reflux.</li></ul></li></ol>"
        "<p>Enjoy.</p>"
    )
    assert [s.title for s in draft.items] == ["Chamomile", "Peppermint"]
    assert draft.items[0].text == "Calming in the evening."
    assert draft.items[1].text == "- Good after meals.\n- Avoid with reflux."
    assert draft.steps[-1].text == "Enjoy."


def test_numbered_headings_and_table_cells():
    draft = split_html(
        "<h1>Guide</h1><p>Intro.</p><h3>1. Endorphins</h3><p>Natural painkillers.</p>"
        "<h3>3. Circulation</h3><p>Better flow.</p><table><tr><td>Mon</td><td>Closed</td></tr></table>"
    )
    assert [s.title for s in draft.items] == ["Endorphins", "Circulation"]
    assert draft.items[1].text == "Better flow.\n\nMon: Closed"  # a table row is one line, never a heading


def test_windows_1252_page_that_declares_its_charset():
    page = "<html><head><meta charset='windows-1252'></head><body><h1>Caf\u00e9 Guide</h1><p>Intro.</p>" \
           "<ul><li><b>Tea\u2019s Role:</b> calming.</li><li><b>Coffee:</b> less so.</li></ul></body></html>"
    draft = split_html(page.encode("cp1252"))
    assert draft.title == "Caf\u00e9 Guide" and draft.items[0].title == "Tea\u2019s Role"


def test_undeclared_non_utf8_html_is_refused():
    with pytest.raises(DocumentError, match="not UTF-8"):
        parse_bytes("<p>caf\u00e9</p>".encode("cp1252"), ".html", "page.html")


def test_page_with_only_chrome_has_no_readable_text():
    with pytest.raises(DocumentError, match="no readable text"):
        page = b"<html><body><nav>Home</nav><script>x()</script><footer>Addr</footer></body></html>"
        parse_bytes(page, ".htm", "p.htm")

"""Word documents, built with python-docx in tmp_path: styles, bold runs and Word numbering decide."""

from __future__ import annotations

import docx
import pytest

from campaigns.documents import DocumentError, read_document
from campaigns.split import split_file
from tests.campaigns.split_helpers import build_docx, draft_words, words


@pytest.fixture
def leaflet(tmp_path):
    path = build_docx(tmp_path / "cupping.docx", [
        ("Title", "Cupping Therapy Explained"),
        (None, "Cupping is an old technique. This leaflet explains it."),
        ("Heading 1", "How Cupping Works"),
        ("List Number", [("Suction:", True), (" the cups lift skin and muscle.", False)]),
        ("List Number", [("Blood Flow", True)]),
        ("List Continue", "More blood reaches the treated area."),
        (None, "3) Relaxation: many people find it calming."),
        ("Heading 1", "What to Expect"),
        ("List Bullet", [("Marks", True), (" – round marks fade within days.", False)]),
        ("List Bullet", [("Duration", True), (": sessions last 20 minutes.", False)]),
        (None, [("Call the clinic", False), (" to book.", False)]),
    ])
    doc = docx.Document(str(path))
    table = doc.add_table(rows=2, cols=2)
    merged = table.cell(0, 0).merge(table.cell(0, 1))
    merged.text = "Opening hours"
    table.cell(1, 0).text = "Mon"
    table.cell(1, 1).text = "Closed"
    doc.core_properties.title = "Old template title"
    doc.save(str(path))
    return path


def test_list_styles_bold_runs_and_typed_numbers_make_items(leaflet):
    draft = split_file(leaflet)
    assert draft.title == "Cupping Therapy Explained"
    assert [(s.section, s.title, s.text) for s in draft.items] == [
        ("How Cupping Works", "Suction", "the cups lift skin and muscle."),
        ("How Cupping Works", "Blood Flow", "More blood reaches the treated area."),
        ("How Cupping Works", "Relaxation", "many people find it calming."),
        ("What to Expect", "Marks", "round marks fade within days."),
        ("What to Expect", "Duration", "sessions last 20 minutes."),
    ]


def test_merged_table_cells_are_read_once_and_rows_become_lines(leaflet):
    draft = split_file(leaflet)
    assert draft.steps[-1].kind == "outro"
    assert draft.steps[-1].text == "Call the clinic to book.\n\nOpening hours\nMon: Closed"
    source = words("Cupping Therapy Explained Cupping is an old technique. This leaflet explains it. How Cupping Works "
                   "Suction the cups lift skin and muscle. Blood Flow More blood reaches the treated area. Relaxation: "
                   "many people find it calming. What to Expect Marks round marks fade within days. Duration sessions "
                   "last 20 minutes. Call the clinic to book. Opening hours Mon Closed")
    assert draft_words(draft) == source


def test_core_properties_title_is_only_a_hint(leaflet, tmp_path):
    assert read_document(leaflet).title_hint == "Old template title"
    path = build_docx(tmp_path / "x.docx", [("List Bullet", [("Sleep:", True), (" rest.", False)])])
    doc = docx.Document(str(path))
    doc.core_properties.title = "Sleep Leaflet"
    doc.save(str(path))
    assert split_file(path).title == "Sleep Leaflet"


def _numbered(paragraph, num_id: int, level: int) -> None:
    num_pr = paragraph._p.get_or_add_pPr().get_or_add_numPr()
    num_pr.get_or_add_numId().val = num_id
    num_pr.get_or_add_ilvl().val = level


def test_word_numbering_on_a_paragraph_sets_kind_and_depth(tmp_path):
    # the default template's numId 1 is a bullet list, numId 5 a decimal one
    doc = docx.Document()
    doc.add_heading("Guide", level=1)
    doc.add_paragraph("Intro.")
    specs = [("Insomnia:", 1, 0), ("Trouble sleeping for weeks.", 1, 1), ("Stress:", 5, 0), ("Constant worry.", 1, 1)]
    for text, num_id, level in specs:
        _numbered(doc.add_paragraph(text, style="List Paragraph"), num_id, level)
    doc.save(str(tmp_path / "n.docx"))
    blocks = [b for b in read_document(tmp_path / "n.docx").blocks if b.kind == "item"]
    assert [(b.numbered, b.depth) for b in blocks] == [(False, 0), (False, 1), (True, 0), (False, 1)]
    draft = split_file(tmp_path / "n.docx")
    assert [(s.title, s.text) for s in draft.items] == [
        ("Insomnia", "Trouble sleeping for weeks."), ("Stress", "Constant worry."),
    ]


def test_numbered_heading_is_an_item_and_line_breaks_survive(tmp_path):
    doc = docx.Document()
    doc.add_paragraph("Guide", style="Title")
    doc.add_paragraph("Intro.")
    doc.add_heading("2. Endorphins", level=2)
    p = doc.add_paragraph("Natural painkillers.")
    p.add_run().add_break()
    p.add_run("Released during treatment.")
    doc.save(str(tmp_path / "h.docx"))
    draft = split_file(tmp_path / "h.docx")
    assert [(s.title, s.text) for s in draft.items] == [
        ("Endorphins", "Natural painkillers.\nReleased during treatment."),
    ]


def test_seed_typed_into_word_paragraphs_gives_the_same_items(seed_path, tmp_path):
    lines = [line for line in seed_path.read_text(encoding="utf-8").split("\n") if line.strip()]
    path = build_docx(tmp_path / "seed.docx", [(None, line) for line in lines])
    draft, txt = split_file(path), split_file(seed_path)
    assert draft.title == txt.title
    assert [(s.section, s.title, s.text) for s in draft.items] == [(s.section, s.title, s.text) for s in txt.items]


@pytest.mark.parametrize(
    "data, message",
    [(b"PK\x03\x04 not really a zip", "not a Word .docx file"),
     (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 old binary doc", "not a Word .docx file")],
)
def test_broken_or_old_word_files_are_clear_errors(tmp_path, data, message):
    path = tmp_path / "broken.docx"
    path.write_bytes(data)
    with pytest.raises(DocumentError, match=message) as err:
        read_document(path)
    assert err.value.where == str(path)


def test_zip_that_is_not_a_word_package(tmp_path):
    import zipfile

    path = tmp_path / "other.docx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(DocumentError, match="not a readable Word .docx file"):
        read_document(path)


def test_word_file_without_text(tmp_path):
    path = tmp_path / "empty.docx"
    docx.Document().save(str(path))
    with pytest.raises(DocumentError, match="no readable text"):
        read_document(path)

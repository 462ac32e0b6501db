"""One small fixture per kind of mess clinics' documents come with (issue 10); the corpus test covers them together."""

from __future__ import annotations

import docx
import pytest

from campaigns.documents import parse_bytes
from campaigns.readers.plaintext import parse_text
from campaigns.split import split_document
from tests.campaigns.split_helpers import add_runs


def split(text: str | bytes, suffix: str):
    data = text.encode() if isinstance(text, str) else text
    return split_document(parse_bytes(data, suffix, "doc" + suffix), name="doc")


def items(draft) -> list[tuple[str, str]]:
    return [(s.title, s.text) for s in draft.items]


def everything(draft) -> str:
    return "\n".join([draft.title, *(f"{s.section}\n{s.title}\n{s.subject}\n{s.text}" for s in draft.steps)])


# -- HTML ------------------------------------------------------------------------------------

def test_google_docs_wrapper_is_a_container_and_bold_comes_from_style():
    html = ('<b style="font-weight:normal;" id="docs-internal-guid-1"><h1><span>Guide</span></h1>'
            '<p><span style="font-weight:400">Intro text here.</span></p>'
            '<p><span style="font-weight:700">Rest well.</span><span style="font-weight:400"> Sleep early.</span></p>'
            '<p><span style="font-weight:700">Eat warm.</span><span style="font-weight:400"> Soups help.</span></p></b>')
    draft = split(html, ".html")
    assert draft.title == "Guide"
    assert items(draft) == [("Rest well", "Sleep early."), ("Eat warm", "Soups help.")]


def test_bold_by_span_style_in_a_list_entry():
    html = ('<h1>T</h1><ul><li><span style="font-weight: bold">Sleep:</span> rest well.</li>'
            '<li><span style="font-weight:600">Diet:</span> eat warm.</li></ul>')
    assert items(split(html, ".html")) == [("Sleep", "rest well."), ("Diet", "eat warm.")]


@pytest.mark.parametrize("furniture", [
    '<div class="entry-meta">Posted on March 3 by Dr Lee</div>',
    '<p class="byline">By Dr Lee</p>',
    '<p>By <a rel="author" href="/lee">Dr Lee</a> on <time>March 3</time></p>',
    '<div class="share-buttons"><a href="#">Share on Facebook</a></div>',
    '<div class="related-posts"><h3>You may also like</h3><p>Another article about something.</p></div>',
    '<div class="post-navigation"><a href="/p">Previous post</a> <a href="/n">Next post</a></div>',
    '<div id="comments"><h3>Leave a Reply</h3><p>Nice post!</p></div>',
    '<div class="ad-slot"><p>Advertisement: buy teas now.</p></div>',
    '<div class="newsletter-signup"><h4>Get our newsletter</h4><p>Monthly tips.</p></div>',
    '<nav aria-label="Breadcrumb"><a href="/">Home</a> / <a href="/b">Blog</a></nav>',
    '<ul><li><a href="/a">Acupuncture page</a></li><li><a href="/b">Cupping page</a></li></ul>',
    '<div aria-label="Share this article"><span>Share this article now</span></div>',
])
def test_in_article_furniture_is_dropped_by_structure_and_hints(furniture):
    html = (f"<article><h1>Guide</h1>{furniture}<p>Intro text.</p><ol><li><strong>Sleep:</strong> rest.</li>"
            f"<li><strong>Diet:</strong> eat.</li></ol>{furniture}</article>")
    draft = split(html, ".html")
    assert items(draft) == [("Sleep", "rest."), ("Diet", "eat.")]
    text = everything(draft)
    for word in ("Posted", "Dr Lee", "Share", "also like", "Previous", "Reply", "Advertisement", "newsletter",
                 "Home", "page", "March"):
        assert word not in text


def test_a_furniture_hint_never_drops_the_article_itself():
    html = ('<body class="single-post comments-open"><div class="content-sidebar-wrap"><article class="post tag-sleep">'
            "<h1>Guide</h1><p>Intro.</p><ol><li><strong>Sleep:</strong> rest.</li><li><strong>Diet:</strong> eat."
            "</li></ol></article></div></body>")
    assert [t for t, _ in items(split(html, ".html"))] == ["Sleep", "Diet"]


def test_html_table_is_a_line_per_row_with_headers():
    html = ("<h1>Guide</h1><table><tr><th>Day</th><th>Hours</th></tr><tr><td>Mon</td><td>9-5</td></tr>"
            "<tr><td>Sat</td><td>9-1</td></tr></table><ol><li><b>Sleep:</b> rest.</li></ol>")
    draft = split(html, ".html")
    assert draft.steps[0].text == "Day: Mon; Hours: 9-5\nDay: Sat; Hours: 9-1"


def test_numbered_h3_items():
    html = "<h1>Guide</h1><h3>1. Sleep</h3><p>Rest well.</p><h3>2. Diet</h3><p>Eat warm.</p>"
    assert items(split(html, ".html")) == [("Sleep", "Rest well."), ("Diet", "Eat warm.")]


# -- Markdown --------------------------------------------------------------------------------

@pytest.mark.parametrize("front", [
    '---\ntitle: "Sleep Guide"\ndate: 2024-01-01\ntags:\n  - sleep\n# a comment\n---\n',
    '+++\ntitle = "Sleep Guide"\ndate = 2024-01-01\ntags = ["sleep"]\n+++\n',
])
def test_front_matter_is_a_title_hint_never_body(front):
    draft = split(front + "\nIntro text.\n\n1. **Sleep:** rest.\n2. **Diet:** eat.\n", ".md")
    assert draft.title == "Sleep Guide"
    assert "2024" not in everything(draft) and "tags" not in everything(draft)


def test_gfm_table_footnotes_and_setext_headings():
    md = ("Sleep Guide\n===========\n\nIntro text.[^1]\n\nWhat Helps\n----------\n\n"
          "- **Rest:** early nights.[^2]\n- **Warmth:** keep covered.\n\n"
          "| Day | Hours |\n|---|---|\n| Mon | 9-5 |\n\n[^1]: Smith 2020.\n[^2]: Jones 2021.\n")
    draft = split(md, ".md")
    assert draft.title == "Sleep Guide"
    assert [(s.section, s.title, s.text) for s in draft.items] == [
        ("What Helps", "Rest", "early nights."), ("What Helps", "Warmth", "keep covered.")]
    assert draft.steps[-1].text == "Day: Mon; Hours: 9-5\n\nSources:\nSmith 2020.\nJones 2021."
    assert "[^" not in everything(draft)


def test_markdown_link_lists_are_furniture():
    md = ("* [Home](/)\n* [About](/about)\n\n# Guide\n\n[Share](/s) [Tweet](/t)\n\nIntro.\n\n"
          "1. **Sleep:** rest.\n2. **Diet:** eat.\n")
    draft = split(md, ".md")
    assert "Home" not in everything(draft) and "Tweet" not in everything(draft)


# -- plain text ------------------------------------------------------------------------------

def test_forwarded_email_headers_and_signature_are_dropped():
    text = ("---------- Forwarded message ---------\nFrom: Clinic <a@b.test>\nDate: Tue, Mar 5, 2024\n"
            "Subject: Sleep Guide\nTo: desk@b.test\n\n\nIntro text.\n\n1. Sleep:\nRest well.\n\n2. Diet:\nEat warm.\n\n"
            "-- \nFront Desk\n555-0100\n")
    draft = split(text, ".txt")
    assert draft.title == "Sleep Guide"
    assert items(draft) == [("Sleep", "Rest well."), ("Diet", "Eat warm.")]
    assert "From" not in everything(draft) and "555" not in everything(draft)


def test_mime_message_quoted_printable_is_decoded_and_only_the_text_part_kept():
    text = ('MIME-Version: 1.0\nSubject: Sleep Guide\nContent-Type: multipart/alternative; boundary="XX"\n\n'
            "--XX\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
            "It=E2=80=99s time to rest a=\nnd recover.\n\n- Sleep: Rest well.\n- Diet: Eat warm.\n"
            "--XX\nContent-Type: text/html\n\n<p>html copy</p>\n--XX--\n")
    draft = split(text, ".txt")
    assert draft.title == "Sleep Guide"
    assert draft.steps[0].text == "It\u2019s time to rest and recover."
    assert "html copy" not in everything(draft) and "Content-Type" not in everything(draft)


def test_hard_wrapped_paragraphs_are_rejoined():
    lines = ("Feeling tired all the time is not something you have to accept today,\n"
             "and we can work on it together, step by step, with treatment and rest.\n")
    text = f"Guide\n\n{lines}\n1. Sleep:\n{lines}\n2. Diet:\nEat warm food at regular times during the day.\n"
    draft = split(text, ".txt")
    joined = " ".join(lines.split("\n")).strip()
    assert draft.steps[0].text == joined and draft.items[0].text == joined


def test_short_lines_are_not_joined():
    doc = parse_text("Guide\n\nRelease of Endorphins\nAcupuncture helps.\n")
    assert doc.blocks[1].text == "Release of Endorphins\nAcupuncture helps."


def test_sub_bullet_markers_nest_under_the_entry():
    text = ("Guide\n\nIntro.\n\n\u2022\tMovement: Keep moving.\no\tWalk after lunch.\n\u25e6\tSwim.\n"
            "\u2022\tWarmth: Stay warm.\n\u25aa\tShower.\n")
    draft = split(text, ".txt")
    assert items(draft) == [("Movement", "Keep moving.\n\n- Walk after lunch.\n- Swim."),
                            ("Warmth", "Stay warm.\n\nShower.")]


# -- items without list markers --------------------------------------------------------------

@pytest.mark.parametrize("suffix, text", [
    (".md", "# Guide\n\nIntro.\n\n**Stretch first.** Knees to chest.\n\n**Sit well.** Use a cushion.\n"),
    (".md", "# Guide\n\nIntro.\n**Stretch first.** Knees to chest.\n**Sit well.** Use a cushion.\n"),
    (".txt", "Guide\n\nIntro.\n\nTip 1: Stretch first\nKnees to chest.\n\nTip 2: Sit well\nUse a cushion.\n"),
    (".txt", "Guide\n\nIntro.\nBenefit 1: Stretch first\nKnees to chest.\nBenefit 2: Sit well\nUse a cushion.\n"),
    (".txt", "Guide\n\nIntro.\n\nStep 1 \u2013 Stretch first\nKnees to chest.\n\nStep 2 \u2013 Sit well\nUse a cushion.\n"),
    (".md", "# Guide\n\nIntro.\n\nStretch First: Knees to chest.\n\nSit Well: Use a cushion.\n"),
    (".txt", "Guide\n\nIntro.\n\nStretch First:\nKnees to chest.\n\nSit Well:\nUse a cushion.\n"),
])
def test_items_titled_without_list_markers(suffix, text):
    draft = split(text, suffix)
    assert [t for t, _ in items(draft)] in (["Stretch first", "Sit well"], ["Stretch First", "Sit Well"])
    assert [b for _, b in items(draft)] == ["Knees to chest.", "Use a cushion."]
    assert draft.steps[0].kind == "intro" and draft.steps[0].text == "Intro."


def test_first_title_colon_entry_of_each_section_is_an_item():
    md = ("# Foods\n\nIntro.\n\n## Summer\n\nLead in.\n\nCucumber: Cooling.\n\nMelon: Sweet.\n\n"
          "## Winter\n\nBroth: Warming.\n\nGinger: Hot.\n")
    assert [t for t, _ in items(split(md, ".md"))] == ["Cucumber", "Melon", "Broth", "Ginger"]


def test_a_lone_label_paragraph_stays_text():
    draft = split("# Guide\n\nNote: this is a note.\n\n1. **Sleep:** rest.\n", ".md")
    assert [t for t, _ in items(draft)] == ["Sleep"] and "Note: this is a note." in draft.steps[0].text


def test_body_runs_to_the_next_item_and_the_last_item_leaves_the_sign_off():
    text = ("Guide\n\nIntro.\n\nBloating:\nGas moves.\n\nReflux:\nAcid calms.\nMore on reflux.\n\n"
            "Warm regards,\nThe Team\n")
    draft = split(text, ".txt")
    assert items(draft) == [("Bloating", "Gas moves."), ("Reflux", "Acid calms.\nMore on reflux.")]
    assert draft.steps[-1].kind == "outro" and draft.steps[-1].text == "Warm regards,\nThe Team"


# -- not items -------------------------------------------------------------------------------

def test_faq_becomes_one_text_step_never_one_email_per_question():
    md = ("# Guide\n\nIntro.\n\n1. **Sleep:** rest.\n2. **Diet:** eat.\n\n## FAQ\n\n### Does it hurt?\n\nNo.\n\n"
          "### How long?\n\nAn hour.\n\n**Is it safe?** Yes.\n\n**Can I drive?** Yes.\n")
    draft = split(md, ".md")
    assert [t for t, _ in items(draft)] == ["Sleep", "Diet"]
    faq = [s for s in draft.steps if s.section == "FAQ"]
    assert len(faq) == 1 and faq[0].kind == "outro"
    assert faq[0].text.startswith("Does it hurt?\n\nNo.\n\nHow long?")


@pytest.mark.parametrize("heading", ["References", "Key Takeaways", "Sources", "Summary"])
def test_references_and_takeaways_are_never_items(heading):
    md = (f"# Guide\n\nIntro.\n\n1. **Sleep:** rest.\n2. **Diet:** eat.\n\n## {heading}\n\n"
          "1. **Smith J:** Sleep study. 2020.\n2. **Lee K:** Diet study. 2021.\n")
    assert [t for t, _ in items(split(md, ".md"))] == ["Sleep", "Diet"]


def test_untitled_bullets_and_procedure_steps_are_not_items():
    md = ("# Guide\n\nIntro.\n\n- **Warmth:** softens tissue.\n- **Rest:** heals.\n\n## How to Use It\n\n"
          "1. Warm the pack.\n2. Wrap it in a towel.\n3. Place it for twenty minutes.\n\n## Avoid When\n\n"
          "- the skin is broken\n- it is swollen\n")
    assert [t for t, _ in items(split(md, ".md"))] == ["Warmth", "Rest"]


# -- Word ------------------------------------------------------------------------------------

def _save(d, tmp_path) -> bytes:
    path = tmp_path / "w.docx"
    d.save(str(path))
    return path.read_bytes()


def test_word_table_hyperlink_outline_level_and_numbering(tmp_path):
    from docx.enum.style import WD_STYLE_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    d = docx.Document()
    style = d.styles.add_style("Big Head", WD_STYLE_TYPE.PARAGRAPH)
    lvl = OxmlElement("w:outlineLvl")
    lvl.set(qn("w:val"), "0")
    style.element.get_or_add_pPr().append(lvl)
    d.add_paragraph("Sleep Guide", style="Big Head")
    p = d.add_paragraph("See ")
    r_id = p.part.relate_to("https://x.test", "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink",
                            is_external=True)
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), r_id)
    run = OxmlElement("w:r")
    t = OxmlElement("w:t")
    t.text = "our page"
    run.append(t)
    link.append(run)
    p._p.append(link)
    p.add_run(" for more.")
    for title in ("Rest:", "Warmth:"):
        para = d.add_paragraph(style="List Paragraph")
        num_pr = para._p.get_or_add_pPr().get_or_add_numPr()
        num_pr.get_or_add_numId().val = 5
        num_pr.get_or_add_ilvl().val = 0
        add_runs(para, [(title, True), (" body.", False)])
    table = d.add_table(rows=2, cols=2)
    for r, (a, b) in enumerate([("Day", "Hours"), ("Mon", "9-5")]):
        table.cell(r, 0).text, table.cell(r, 1).text = a, b
    draft = split(_save(d, tmp_path), ".docx")
    assert draft.title == "Sleep Guide"
    assert draft.steps[0].text == "See our page for more."
    assert items(draft) == [("Rest", "body."), ("Warmth", "body.")]
    assert draft.steps[-1].text == "Day: Hours\nMon: 9-5"


def test_word_bold_period_paragraphs_and_sign_off(tmp_path):
    d = docx.Document()
    d.add_heading("Guide", level=1)
    d.add_paragraph("Intro.")
    for title, body in (("Arrive early.", " Less rush."), ("Drink water.", " It helps.")):
        add_runs(d.add_paragraph(), [(title, True), (body, False)])
    d.add_paragraph("With warm wishes,")
    d.add_paragraph("Dr. Lee")
    draft = split(_save(d, tmp_path), ".docx")
    assert items(draft) == [("Arrive early", "Less rush."), ("Drink water", "It helps.")]
    assert draft.steps[-1].text == "With warm wishes,\n\nDr. Lee"


def test_word_reader_never_resolves_styles_run_by_run(tmp_path, monkeypatch):
    """python-docx's `run.style` walks the styles part on every call (35 s on a 200-page file)."""
    from docx.text.paragraph import Paragraph
    from docx.text.run import Run

    d = docx.Document()
    d.add_heading("Guide", level=1)
    for k in range(20):
        add_runs(d.add_paragraph(style="List Number"), [(f"Title {k}:", True), (" body", False), (" more", False)])
    data = _save(d, tmp_path)

    def forbidden(self):
        raise AssertionError("per-run/paragraph style lookup")

    monkeypatch.setattr(Run, "style", property(forbidden))
    monkeypatch.setattr(Paragraph, "style", property(forbidden))
    assert [s.title for s in split(data, ".docx").items] == [f"Title {k}" for k in range(20)]


def test_untitled_labelled_steps_keep_their_labels_as_text():
    md = ("# Guide\n\nIntro.\n\n- **Warmth:** softens tissue.\n- **Rest:** heals.\n\n## At Home\n\n"
          "Step 1: Warm the pack.\nStep 2: Wrap it in a towel.\n")
    draft = split(md, ".md")
    assert [t for t, _ in items(draft)] == ["Warmth", "Rest"]
    assert draft.steps[-1].text == "Step 1: Warm the pack.\n\nStep 2: Wrap it in a towel."


def test_bold_labelled_title_in_html():
    html = "<h1>Guide</h1><p>Intro.</p><p><b>Tip 1: Hydrate</b><br>Drink water.</p><p><b>Tip 2: Rest</b><br>Sleep.</p>"
    assert items(split(html, ".html")) == [("Hydrate", "Drink water."), ("Rest", "Sleep.")]


def test_a_next_steps_box_is_content_and_a_long_tail_after_dashes_is_not_a_signature():
    html = ('<h1>Guide</h1><p>Intro.</p><ol><li><b>Sleep:</b> rest.</li><li><b>Diet:</b> eat.</li></ol>'
            '<div class="next-steps"><p>Book a follow-up visit.</p></div>')
    assert "Book a follow-up visit." in everything(split(html, ".html"))
    tail = "\n\n".join(f"{k}. Point {k}:\nBody {k}." for k in range(1, 6))
    draft = split(f"Guide\n\nIntro.\n\n--\n\n{tail}\n", ".txt")
    assert len(draft.items) == 5


def test_page_builder_widget_wrappers_are_content():
    def widget(inner: str, kind: str = "text-editor") -> str:
        return (f'<div class="elementor-element elementor-widget elementor-widget-{kind}">'
                f'<div class="elementor-widget-container">{inner}</div></div>')

    html = ("<body>" + widget("<h1>Guide</h1>", "heading") + widget("<p>Intro text.</p>")
            + widget("<ul><li><b>Sleep:</b> rest.</li><li><b>Diet:</b> eat.</li></ul>")
            + widget('<a href="#">Share on Facebook</a> <a href="#">Share on X</a>', "share-buttons") + "</body>")
    draft = split(html, ".html")
    assert draft.title == "Guide" and items(draft) == [("Sleep", "rest."), ("Diet", "eat.")]
    assert "Share" not in everything(draft)


def test_word_tracked_changes_read_as_accepted(tmp_path):
    from docx.oxml import parse_xml

    d = docx.Document()
    d.add_heading("Guide", level=1)
    p = d.add_paragraph("Intro ")
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    p._p.append(parse_xml(f'<w:ins {w} w:id="1" w:author="a"><w:r><w:t>kept</w:t></w:r></w:ins>'))
    p._p.append(parse_xml(f'<w:del {w} w:id="2" w:author="a"><w:r><w:delText>gone</w:delText></w:r></w:del>'))
    p.add_run(" text.")
    for title in ("Rest:", "Warmth:"):
        add_runs(d.add_paragraph(style="List Number"), [(title, True), (" body.", False)])
    draft = split(_save(d, tmp_path), ".docx")
    assert draft.steps[0].text == "Intro kept text."


def test_plain_text_faq_questions_stay_in_one_faq_step():
    text = ("Guide\n\nIntro.\n\n1. Sleep:\nRest well.\n\n2. Diet:\nEat warm.\n\nFAQ\n\nDoes it hurt?\n\nNo, it tingles.\n\n"
            "How long is a visit?\n\nAbout an hour.\n")
    draft = split(text, ".txt")
    assert [t for t, _ in items(draft)] == ["Sleep", "Diet"]
    assert [(s.kind, s.section) for s in draft.steps[-1:]] == [("outro", "FAQ")]
    assert draft.steps[-1].text.startswith("Does it hurt?\n\nNo, it tingles.\n\nHow long is a visit?")

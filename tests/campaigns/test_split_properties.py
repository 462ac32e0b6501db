"""Property tests: whatever the document looks like, no word is lost or duplicated and items are counted right.

"Text" here means word tokens (\\w+): the words of the title, of each section heading once per
run of steps under it, of item titles and of step texts must equal the document's words
without its list markers. Generated documents come from random sections, items and
paragraphs, rendered as .txt (LF or CRLF), .md, .html and .docx.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import docx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.documents import DocumentError, parse_bytes
from campaigns.split import split_document
from tests.campaigns.split_helpers import add_runs, draft_words, words

VOCAB = ["needle", "calm", "sleep", "tissue", "flow", "river", "stone", "light", "herb", "warm", "gentle", "breath",
         "spine", "energy", "balance", "muscle", "nerve", "blood", "relief", "study", "point", "meridian", "session",
         "practice", "body", "rest", "focus", "morning", "evening", "tea", "ear", "qi", "yin", "yang"]


def phrase(lo: int, hi: int):
    return st.lists(st.sampled_from(VOCAB), min_size=lo, max_size=hi)


title_case = phrase(1, 5).map(lambda ws: " ".join(w.capitalize() for w in ws))
sentence = phrase(3, 12).map(lambda ws: " ".join([ws[0].capitalize(), *ws[1:]]) + ".")
paragraph = st.lists(sentence, min_size=1, max_size=3).map(" ".join)


@dataclass(frozen=True)
class Item:
    title: str
    style: str  # "colon": "1. Title:" + body below; "inline": "1. Title: Body."; "twoline": "1. Title\nBody."
    body: tuple[str, ...]  # sentences; for "colon" rendered as "- " lines (bullets) or one paragraph
    bullets: bool


@dataclass(frozen=True)
class Section:
    heading: str
    lead: tuple[str, ...]
    items: tuple[Item, ...]
    numbered: bool
    marker: str  # "." ")" or a bullet character
    gaps: tuple[int, ...]
    plain: bool = False  # items typed as paragraphs without a list marker: "**Title.** Body." (two or more)


@dataclass(frozen=True)
class Doc:
    title: str
    stray: str
    intro: tuple[str, ...]
    sections: tuple[Section, ...]

    def source_words(self):
        parts = [self.title, self.stray, *self.intro]
        for sec in self.sections:
            parts += [sec.heading, *sec.lead]
            for item in sec.items:
                parts += [item.title, *item.body]
        return words(*parts)

    @property
    def items(self) -> list[tuple[str, str]]:
        return [(sec.heading, item.title) for sec in self.sections for item in sec.items]


item_st = st.builds(
    Item, title=title_case, style=st.sampled_from(["colon", "inline", "twoline"]),
    body=st.lists(sentence, min_size=1, max_size=3).map(tuple), bullets=st.booleans(),
)


@st.composite
def section_st(draw, heading: str):
    numbered = draw(st.booleans())
    items = tuple(draw(st.lists(item_st, min_size=0, max_size=4)))
    lead = tuple(draw(st.lists(paragraph, min_size=0 if items else 1, max_size=1)))
    return Section(heading, lead, items, numbered, draw(st.sampled_from(".)" if numbered else "-•*")),
                   tuple(draw(st.lists(st.integers(1, 3), min_size=len(items), max_size=len(items)))),
                   plain=len(items) >= 2 and draw(st.booleans()))


@st.composite
def doc_st(draw):
    headings = draw(st.lists(title_case, min_size=1, max_size=4, unique=True))
    title = draw(title_case.filter(lambda t: t not in headings))
    sections = tuple(draw(section_st(h)) for h in headings)
    if not any(sec.items for sec in sections):
        sec = sections[0]
        sections = (Section(sec.heading, sec.lead, (draw(item_st),), sec.numbered, sec.marker, (1,)), *sections[1:])
    stray = draw(st.sampled_from(["", "nervous system", "draft two"]))
    return Doc(title, stray, tuple(draw(st.lists(paragraph, max_size=2))), sections)


def _markers(sec: Section) -> list[str]:
    if not sec.numbered:
        return [sec.marker] * len(sec.items)
    out, n = [], 0
    for gap in sec.gaps:
        n += gap
        out.append(f"{n}{sec.marker}")
    return out


def body_bullet(sec: Section) -> str:
    return "-" if sec.numbered or sec.marker != "-" else "•"


def render_txt(doc: Doc) -> str:
    chunks = [c for c in (doc.stray, doc.title, *doc.intro) if c]
    for sec in doc.sections:
        chunks += [sec.heading, *sec.lead]
        for mark, item in zip(_markers(sec), sec.items):
            body = " ".join(item.body)
            if sec.plain:
                chunks.append(f"**{item.title}.** {body}")
            elif item.style == "inline":
                chunks.append(f"{mark} {item.title}: {body}")
            elif item.style == "twoline":
                chunks.append(f"{mark} {item.title}\n{body}")
            elif item.bullets:
                chunks.append(f"{mark} {item.title}:\n" + "\n".join(f"{body_bullet(sec)} {s}" for s in item.body))
            else:
                chunks += [f"{mark} {item.title}:", body]
    return "\n\n".join(chunks) + "\n"


def render_md(doc: Doc) -> str:
    chunks = [c for c in (doc.stray, f"# {doc.title}", *doc.intro) if c]
    for sec in doc.sections:
        chunks += [f"## {sec.heading}", *sec.lead]
        for mark, item in zip(_markers(sec), sec.items):
            body = " ".join(item.body)
            mark = mark if mark[0].isdigit() or mark == "*" else "-"  # "•" is not a Markdown list marker
            pad = " " * (len(mark) + 1)
            if sec.plain:
                chunks.append(f"**{item.title}.** {body}")
            elif item.style == "inline":
                chunks.append(f"{mark} **{item.title}:** {body}")
            elif item.style == "twoline":
                chunks.append(f"{mark} {item.title}\n{pad}{body}")
            else:
                chunks.append(f"{mark} {item.title}:\n\n{pad}{body}")
    return "\n\n".join(chunks) + "\n"


def render_html(doc: Doc) -> str:
    e = html.escape
    out = ["<html><head><title>Clinic</title><style>p{}</style></head><body><nav><a>Home Page</a></nav><main>"]
    out += [f"<p>{e(c)}</p>" for c in (doc.stray,) if c]
    out += [f"<h1>{e(doc.title)}</h1>", *(f"<p>{e(p)}</p>" for p in doc.intro)]
    for sec in doc.sections:
        out += [f"<h2>{e(sec.heading)}</h2>", *(f"<p>{e(p)}</p>" for p in sec.lead)]
        if sec.plain:
            out += [f"<p><strong>{e(item.title)}.</strong> {e(' '.join(item.body))}</p>" for item in sec.items]
        elif sec.items:
            tag = "ol" if sec.numbered else "ul"
            out.append(f"<{tag}>")
            for item in sec.items:
                body = e(" ".join(item.body))
                if item.style == "inline":
                    out.append(f"<li><strong>{e(item.title)}</strong> {body}</li>")
                elif item.style == "twoline":
                    out.append(f"<li>{e(item.title)}<br>{body}</li>")
                else:
                    out.append(f"<li><p>{e(item.title)}:</p><p>{body}</p></li>")
            out.append(f"</{tag}>")
    out.append("</main><footer><p>Footer Words Here</p></footer><script>var x = 1;</script></body></html>")
    return "\n".join(out)


def render_docx(doc: Doc, path: Path) -> bytes:
    d = docx.Document()
    if doc.stray:
        d.add_paragraph(doc.stray)
    d.add_paragraph(doc.title, style="Title")
    for p in doc.intro:
        d.add_paragraph(p)
    for sec in doc.sections:
        d.add_heading(sec.heading, level=1)
        for p in sec.lead:
            d.add_paragraph(p)
        style = "List Number" if sec.numbered else "List Bullet"
        for item in sec.items:
            body = " ".join(item.body)
            if sec.plain:
                add_runs(d.add_paragraph(), [(item.title + ".", True), (" " + body, False)])
            elif item.style == "inline":
                add_runs(d.add_paragraph(style=style), [(item.title, True), (" " + body, False)])
            elif item.style == "twoline":
                p = d.add_paragraph(item.title, style=style)
                p.add_run().add_break()
                p.add_run(body)
            else:
                add_runs(d.add_paragraph(style=style), [(item.title + ":", True)])
                d.add_paragraph(body, style="List Continue")
    d.save(str(path))
    return path.read_bytes()


def check(doc: Doc, data: bytes, suffix: str) -> None:
    draft = split_document(parse_bytes(data, suffix, "generated" + suffix), name="generated")
    assert len(draft.items) == len(doc.items)
    assert [(s.section, s.title) for s in draft.items] == doc.items
    assert draft.title == doc.title
    assert draft_words(draft) == doc.source_words()
    for step in draft.steps:
        assert step.text.strip() or step.kind == "item"
        assert "\n" not in step.subject and len(step.subject) <= 78


FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(doc=doc_st(), crlf=st.booleans())
def test_text_documents_keep_every_word_and_item(doc, crlf):
    text = render_txt(doc)
    check(doc, (text.replace("\n", "\r\n") if crlf else text).encode(), ".txt")


@FAST
@given(doc=doc_st())
def test_markdown_documents_keep_every_word_and_item(doc):
    check(doc, render_md(doc).encode(), ".md")


@FAST
@given(doc=doc_st())
def test_html_documents_keep_every_word_and_item(doc):
    check(doc, render_html(doc).encode(), ".html")


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(doc=doc_st())
def test_word_documents_keep_every_word_and_item(doc, tmp_path):
    check(doc, render_docx(doc, tmp_path / "generated.docx"), ".docx")


# Line soup: any mix of markers, titles, sentences, headings, rules and blank lines. Whatever the
# splitter decides, it may only move words between steps, never lose or repeat one.
line_content = st.one_of(
    sentence, title_case, title_case.map(lambda t: t + ":"), title_case.map(lambda t: t + " -"),
    st.tuples(title_case, sentence).map(lambda p: f"{p[0]}: {p[1]}"),
    st.tuples(title_case, sentence).map(lambda p: f"**{p[0]}:** {p[1]}"),
    phrase(1, 3).map(" ".join),
)
soup_line = st.tuples(
    st.sampled_from(["", "", "1. ", "2) ", "10. ", "- ", "• ", "* ", "  - ", "    3. ", "# ", "### "]), line_content
).map("".join)
separator = st.sampled_from(["", "", "", "=====", "-----", "* * *"])


@st.composite
def soup(draw) -> list[str]:
    # distinct content lines: a heading repeated word for word would share one section name
    content = draw(st.lists(soup_line, min_size=1, max_size=25, unique_by=lambda line: line.strip(" -•*#0123456789.)")))
    lines: list[str] = []
    for line in content:
        lines += [line, *draw(st.lists(separator, max_size=2))]
    return lines


@settings(max_examples=100, deadline=None)
@given(lines=soup(), crlf=st.booleans())
def test_line_soup_never_loses_or_repeats_a_word(lines, crlf):
    text = ("\r\n" if crlf else "\n").join(lines)
    try:
        draft = split_document(parse_bytes(text.encode(), ".txt", "soup.txt"), name="zzfallback")
    except DocumentError as exc:
        assert any(m in str(exc) for m in ("no items", "empty", "no readable text"))
        return
    source = words(*(line.lstrip(" -•*#0123456789.)").lstrip() if line.lstrip()[:1] in "-•*#0123456789" else line
                     for line in lines))
    got = draft_words(draft)
    if draft.title == "Zzfallback":
        got -= words(draft.title)
    assert got == source
    assert draft.items


# Soup with the markers of pasted and retyped documents: Word's sub-bullets, "Tip 3:" labels,
# bold-led and "Title:" paragraphs. A label is a list marker when its entry is an item and
# text when it is not, so its words may be kept or dropped; no other word may change.
messy_prefix = st.sampled_from(["", "", "o ", "\u25e6 ", "\u25aa ", "\u2013 ", "\u2022 ", "Tip 2: ", "Step 1 \u2013 ",
                                "Benefit 3: "])
messy_line = st.tuples(messy_prefix, line_content).map("".join)
_MARKERS = ("o ", "\u25e6 ", "\u25aa ", "\u2013 ", "\u2022 ")
_LABELS = ("Tip 2: ", "Step 1 \u2013 ", "Benefit 3: ")


@settings(max_examples=100, deadline=None)
@given(content=st.lists(messy_line, min_size=1, max_size=20, unique_by=lambda s: s.lstrip("o\u25e6\u25aa\u2013\u2022 ")),
       blanks=st.lists(st.booleans(), min_size=20, max_size=20))
def test_messy_soup_loses_no_word_but_labels(content, blanks):
    lines: list[str] = []
    for line, blank in zip(content, blanks):
        lines += [line, ""] if blank else [line]
    try:
        draft = split_document(parse_bytes("\n".join(lines).encode(), ".txt", "soup.txt"), name="zzfallback")
    except DocumentError as exc:
        assert any(m in str(exc) for m in ("no items", "empty", "no readable text"))
        return
    source = words(*(line[len(m):] if (m := next((p for p in _MARKERS if line.startswith(p)), "")) else line
                     for line in lines))
    labels = words(*(p for line in lines for p in _LABELS if line.startswith(p)))
    got = draft_words(draft)
    if draft.title == "Zzfallback":
        got -= words(draft.title)
    assert not (got - source)  # nothing invented or doubled
    missing = source - got
    assert all(n <= labels[w] for w, n in missing.items()), missing  # only label words may go

"""Word .docx -> blocks with python-docx: paragraph styles say what a paragraph is.

"Title"/"Heading N" are headings, "List Number"/"List Bullet" (or any paragraph with Word
numbering) are items, "List Continue" is body text inside an item, and leading bold runs are
the bold title. Word hides auto-numbers from the text; numbers typed by hand ("1. Title:")
go through the plain-text line rules like any other paragraph.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import IO

import docx
from docx.document import Document as WordDocument
from docx.table import Table
from docx.text.paragraph import Paragraph

from campaigns.blocks import Block, Document
from campaigns.readers.plaintext import blocks_from_paragraph, split_marker

_HEADING = re.compile(r"^Heading (\d)$")
_LIST = re.compile(r"^List (Number|Bullet|Continue|Paragraph)(?: (\d))?$")


def _style_names(paragraph: Paragraph) -> list[str]:
    """The paragraph's style and the styles it is based on (custom styles built on 'List Number')."""
    names: list[str] = []
    style = paragraph.style
    while style is not None and len(names) < 8:
        names.append(style.name or "")
        style = style.base_style
    return names


def _numbering(doc: WordDocument, paragraph: Paragraph) -> tuple[int, bool] | None:
    """(level, numbered?) from the paragraph's own Word numbering, None if it has none."""
    ppr = paragraph._p.pPr
    num_pr = ppr.numPr if ppr is not None else None
    if num_pr is None or num_pr.numId is None or num_pr.numId.val == 0:  # numId 0 means "numbering off"
        return None
    level = num_pr.ilvl.val if num_pr.ilvl is not None else 0
    numbered = True
    try:
        numbering = doc.part.numbering_part.element
        abstract = numbering.xpath(f'./w:num[@w:numId="{num_pr.numId.val}"]/w:abstractNumId/@w:val')
        if abstract:
            lvl = f'./w:abstractNum[@w:abstractNumId="{abstract[0]}"]/w:lvl[@w:ilvl="{{}}"]/w:numFmt/@w:val'
            fmt = numbering.xpath(lvl.format(level)) or numbering.xpath(lvl.format(0))  # single-level lists
            numbered = not fmt or fmt[0] not in ("bullet", "none")
    except (NotImplementedError, KeyError, AttributeError):
        pass
    return level, numbered


def _bold_prefix(paragraph: Paragraph) -> str:
    """Text of the bold runs the paragraph starts with."""
    parts: list[str] = []
    for content in paragraph.iter_inner_content():
        for run in getattr(content, "runs", [content]):
            text = run.text
            bold = bool(run.bold) or (run.style is not None and run.style.name in ("Strong", "Bold"))
            if not text.strip():
                if parts:
                    parts.append(text)
                continue
            if not bold:
                return "".join(parts).strip()
            parts.append(text)
    return "".join(parts).strip()


def _paragraph(doc: WordDocument, paragraph: Paragraph, out: list[Block]) -> None:
    text = "\n".join(s for s in (line.strip() for line in paragraph.text.replace("\t", " ").split("\n")) if s)
    if not text:
        return
    names = _style_names(paragraph)
    bold = _bold_prefix(paragraph)
    level: int | None = None
    if names[0] == "Title":
        level = 0
    elif m := _HEADING.match(names[0]):
        level = int(m.group(1))
    if level is not None:
        flat = " ".join(text.split("\n"))
        numbered, rest = split_marker(flat)
        if numbered:  # "2. Insomnia" in a heading style: an item written as a heading
            out.append(Block("item", rest, level=max(level, 1), numbered=True))
        else:
            out.append(Block("heading", flat, level=level))
        return
    numbering = _numbering(doc, paragraph)
    style_list = next((m for m in map(_LIST.match, names) if m and m.group(1) != "Paragraph"), None)
    if numbering is None and style_list is not None:
        kind, n = style_list.group(1), int(style_list.group(2) or 1)
        if kind == "Continue":  # body text that belongs to the list entry above
            out.extend(blocks_from_paragraph(text, depth=n, bold_title=bold))
            return
        numbering = (n - 1, kind == "Number")
    if numbering is not None:
        depth, numbered = numbering
        _, text = split_marker(text)  # a number typed by hand as well as Word's own
        if bold:
            _, bold = split_marker(bold)
        bold = bold if text.startswith(bold) else ""
        out.append(Block("item", text, depth=depth, numbered=numbered, bold_title=bold))
        return
    out.extend(blocks_from_paragraph(text, bold_title=bold))


def _table(doc: WordDocument, table: Table, out: list[Block]) -> None:
    seen: set[object] = set()  # holding the lxml elements keeps their identity stable
    for row in table.rows:
        for cell in row.cells:
            if cell._tc in seen:  # merged cells are reported once per grid column
                continue
            seen.add(cell._tc)
            cells: list[Block] = []
            for content in cell.iter_inner_content():
                if isinstance(content, Paragraph):
                    _paragraph(doc, content, cells)
                else:
                    _table(doc, content, cells)
            out.extend(replace(b, in_table=True) for b in cells)


def parse_docx(source: str | Path | IO[bytes]) -> Document:
    doc = docx.Document(str(source) if isinstance(source, Path) else source)
    out: list[Block] = []
    for content in doc.iter_inner_content():
        if isinstance(content, Paragraph):
            _paragraph(doc, content, out)
        else:
            _table(doc, content, out)
    return Document(out, title_hint=" ".join((doc.core_properties.title or "").split()))

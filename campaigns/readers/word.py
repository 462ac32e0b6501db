"""Word .docx -> blocks: paragraph styles, outline levels and Word numbering say what a paragraph is.

"Title"/"Heading N" (or any style or paragraph with an outline level) are headings, "List
Number"/"List Bullet" (or any paragraph whose own or style's numbering is on) are items,
"List Continue" is body text inside an item, and leading bold runs are the bold title. Word
hides auto-numbers from the text; numbers typed by hand ("1. Title:") go through the
plain-text line rules like any other paragraph. Hyperlink text is text; a table becomes a
line per row (campaigns.readers.tables), unless its cells hold whole paragraphs (layout).

Why lxml instead of python-docx's paragraph/run objects: `run.style` resolves the style
through the styles part on every call, which made a 200-page file take 35 s. Here styles
are read once into a table and every paragraph is one pass over its own XML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import docx

from campaigns.blocks import Block, Document
from campaigns.readers.plaintext import blocks_from_paragraph, split_marker
from campaigns.readers.tables import table_lines

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_VAL = f"{_W}val"
_HEADING = re.compile(r"^(?:heading|titre|überschrift|kop|título|titolo|rubrik)\s*(\d)$", re.I)
_LIST = re.compile(r"^List (Number|Bullet|Continue|Paragraph)(?: (\d))?$", re.I)
# where a paragraph's visible runs live: links, tracked insertions, fields, smart tags, content controls
# (not w:del / w:moveFrom, deleted text; not text boxes inside drawings, which Word stores twice)
_RUN_CONTAINERS = frozenset(f"{_W}{t}" for t in ("hyperlink", "ins", "moveTo", "smartTag", "fldSimple", "customXml",
                                                  "dir", "bdo", "sdt", "sdtContent"))


def _iter_runs(el):
    for child in el:
        if child.tag == f"{_W}r":
            yield child
        elif child.tag in _RUN_CONTAINERS:
            yield from _iter_runs(child)
_OFF = ("0", "false", "off", "none")


def _on(el) -> bool:
    """A w:b / w:bCs style toggle: present and not switched off."""
    return el is not None and el.get(_VAL, "true").lower() not in _OFF


@dataclass
class _Style:
    name: str = ""
    based_on: str = ""
    outline: int | None = None  # 0-8: a heading level; 9 = body text
    num: tuple[int, int] | None = None  # (numId, ilvl) from the style's own numbering
    bold: bool | None = None


class _Styles:
    """styleId -> resolved facts, each style resolved once (names along the basedOn chain)."""

    def __init__(self, doc) -> None:
        self.raw: dict[str, _Style] = {}
        self.default_para = ""
        try:
            root = doc.part.styles.element
        except (NotImplementedError, KeyError, AttributeError):
            root = None
        if root is not None:
            for s in root.iter(f"{_W}style"):
                sid = s.get(f"{_W}styleId") or ""
                st = _Style()
                if (n := s.find(f"{_W}name")) is not None:
                    st.name = n.get(_VAL) or ""
                if (b := s.find(f"{_W}basedOn")) is not None:
                    st.based_on = b.get(_VAL) or ""
                ppr = s.find(f"{_W}pPr")
                if ppr is not None:
                    if (o := ppr.find(f"{_W}outlineLvl")) is not None:
                        st.outline = _int(o.get(_VAL), 9)
                    st.num = _num_pr(ppr.find(f"{_W}numPr"))
                rpr = s.find(f"{_W}rPr")
                if rpr is not None and (b := rpr.find(f"{_W}b")) is not None:
                    st.bold = _on(b)
                self.raw[sid] = st
                if s.get(f"{_W}type") == "paragraph" and s.get(f"{_W}default") in ("1", "true"):
                    self.default_para = sid
        self._names: dict[str, list[str]] = {}
        self._facts: dict[str, tuple[int | None, tuple[int, int] | None, bool]] = {}

    def names(self, sid: str) -> list[str]:
        """The style's name and the names of the styles it is based on."""
        if sid not in self._names:
            names, seen, cur = [], set(), sid or self.default_para
            while cur and cur not in seen and cur in self.raw and len(names) < 8:
                seen.add(cur)
                names.append(self.raw[cur].name)
                cur = self.raw[cur].based_on
            self._names[sid] = names or [""]
        return self._names[sid]

    def facts(self, sid: str) -> tuple[int | None, tuple[int, int] | None, bool]:
        """(outline level, numbering, bold) inherited along the basedOn chain."""
        if sid not in self._facts:
            outline = num = bold = None
            seen, cur = set(), sid or self.default_para
            while cur and cur not in seen and cur in self.raw:
                seen.add(cur)
                st = self.raw[cur]
                outline = st.outline if outline is None else outline
                num = st.num if num is None else num
                bold = st.bold if bold is None else bold
                cur = st.based_on
            self._facts[sid] = (outline, num, bool(bold))
        return self._facts[sid]


def _int(value: str | None, default: int) -> int:
    try:
        return int(value or "")
    except ValueError:
        return default


def _num_pr(num_pr) -> tuple[int, int] | None:
    if num_pr is None:
        return None
    num_id, ilvl = num_pr.find(f"{_W}numId"), num_pr.find(f"{_W}ilvl")
    return (_int(num_id.get(_VAL) if num_id is not None else None, -1),
            _int(ilvl.get(_VAL) if ilvl is not None else None, 0))


class _Numbering:
    """(numId, ilvl) -> numbered? (False for bullets), looked up once per pair."""

    def __init__(self, doc) -> None:
        self.abstract: dict[str, str] = {}
        self.formats: dict[tuple[str, int], str] = {}
        self.cache: dict[tuple[int, int], bool] = {}
        try:
            root = doc.part.numbering_part.element
        except (NotImplementedError, KeyError, AttributeError):
            return
        for num in root.iter(f"{_W}num"):
            a = num.find(f"{_W}abstractNumId")
            if a is not None:
                self.abstract[num.get(f"{_W}numId") or ""] = a.get(_VAL) or ""
        for an in root.iter(f"{_W}abstractNum"):
            aid = an.get(f"{_W}abstractNumId") or ""
            for lvl in an.iter(f"{_W}lvl"):
                fmt = lvl.find(f"{_W}numFmt")
                self.formats[(aid, _int(lvl.get(f"{_W}ilvl"), 0))] = fmt.get(_VAL) if fmt is not None else ""

    def numbered(self, num_id: int, level: int) -> bool:
        key = (num_id, level)
        if key not in self.cache:
            aid = self.abstract.get(str(num_id))
            fmt = None if aid is None else self.formats.get((aid, level), self.formats.get((aid, 0)))
            self.cache[key] = not fmt or fmt not in ("bullet", "none")
        return self.cache[key]


class _Reader:
    def __init__(self, doc) -> None:
        self.styles = _Styles(doc)
        self.numbering = _Numbering(doc)
        self.char_bold: dict[str, bool] = {}

    def _run_style_bold(self, sid: str) -> bool:
        if sid not in self.char_bold:
            names = self.styles.names(sid)
            self.char_bold[sid] = self.styles.facts(sid)[2] or any(n in ("Strong", "Bold") for n in names)
        return self.char_bold[sid]

    def _runs(self, p, para_bold: bool) -> tuple[str, str]:
        """(text, leading bold text) of a paragraph: runs anywhere inside it (hyperlinks, insertions)."""
        parts: list[str] = []
        bold_parts: list[str] = []
        leading = True
        for r in _iter_runs(p):
            pieces: list[str] = []
            for child in r:
                tag = child.tag
                if tag == f"{_W}t":
                    pieces.append(child.text or "")
                elif tag in (f"{_W}tab", f"{_W}ptab"):
                    pieces.append(" ")
                elif tag in (f"{_W}br", f"{_W}cr"):
                    pieces.append("\n")
                elif tag == f"{_W}noBreakHyphen":
                    pieces.append("-")
            if not pieces:
                continue
            text = "".join(pieces)
            parts.append(text)
            if not leading:
                continue
            if not text.strip():
                if bold_parts:
                    bold_parts.append(text)
                continue
            rpr = r.find(f"{_W}rPr")
            bold = para_bold
            if rpr is not None:
                b = rpr.find(f"{_W}b")
                rs = rpr.find(f"{_W}rStyle")
                if b is not None:
                    bold = _on(b)
                elif rs is not None:
                    bold = bold or self._run_style_bold(rs.get(_VAL) or "")
            if bold:
                bold_parts.append(text)
            else:
                leading = False
        return "".join(parts), "".join(bold_parts).strip()

    def paragraph(self, p, out: list[Block]) -> None:
        ppr = p.find(f"{_W}pPr")
        sid = ""
        own_num = outline = None
        if ppr is not None:
            if (ps := ppr.find(f"{_W}pStyle")) is not None:
                sid = ps.get(_VAL) or ""
            own_num = _num_pr(ppr.find(f"{_W}numPr"))
            if (o := ppr.find(f"{_W}outlineLvl")) is not None:
                outline = _int(o.get(_VAL), 9)
        s_outline, s_num, s_bold = self.styles.facts(sid)
        raw, bold = self._runs(p, s_bold)
        text = "\n".join(s for s in (line.strip() for line in raw.replace("\t", " ").split("\n")) if s)
        if not text:
            return
        names = self.styles.names(sid)
        level: int | None = None
        if names[0].lower() == "title":
            level = 0
        elif m := _HEADING.match(names[0]):
            level = int(m.group(1))
        else:
            lvl = outline if outline is not None else s_outline
            if lvl is not None and 0 <= lvl <= 5:
                level = lvl + 1
        if level is not None:
            flat = " ".join(text.split("\n"))
            numbered, rest = split_marker(flat)
            if numbered:  # "2. Insomnia" in a heading style: an item written as a heading
                out.append(Block("item", rest, level=max(level, 1), numbered=True))
            else:
                out.append(Block("heading", flat, level=level))
            return
        num = own_num if own_num is not None else s_num
        numbering: tuple[int, bool] | None = None
        if num is not None and num[0] > 0:  # numId 0 means "numbering off"
            numbering = (num[1], self.numbering.numbered(*num))
        style_list = next((m for m in map(_LIST.match, names) if m and m.group(1).lower() != "paragraph"), None)
        if (num is None or num[0] <= 0) and style_list is not None and not (own_num and own_num[0] == 0):
            kind, n = style_list.group(1).capitalize(), int(style_list.group(2) or 1)
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

    def table(self, tbl, out: list[Block]) -> None:
        rows: list[list[tuple[object, list[Block]]]] = []
        layout = False
        first_bold = True
        for tr in tbl.iterchildren(f"{_W}tr"):
            row: list[tuple[object, list[Block]]] = []
            for tc in tr.iterchildren(f"{_W}tc"):
                cell: list[Block] = []
                paras = 0
                for child in tc:
                    if child.tag == f"{_W}p":
                        before = len(cell)
                        self.paragraph(child, cell)
                        paras += len(cell) > before
                    elif child.tag == f"{_W}tbl":
                        self.table(child, cell)
                        layout = True
                if paras > 1 or any(b.kind != "para" for b in cell):
                    layout = True
                if len(rows) == 0 and any(b.text and b.bold_title != b.text for b in cell):
                    first_bold = False
                row.append((tc, cell))
            rows.append(row)
        header = first_bold or any(tr.find(f"{_W}trPr/{_W}tblHeader") is not None
                                   for tr in tbl.iterchildren(f"{_W}tr"))
        if layout:  # cells hold whole paragraphs, lists or tables: read them as text in order
            for row in rows:
                for _, cell in row:
                    out.extend(replace(b, in_table=True) for b in cell)
            return
        texts = [[" ".join(b.text for b in cell) for _, cell in row] for row in rows]
        lines = table_lines(texts, header_row=header)
        if lines:
            out.append(Block("para", "\n".join(lines), in_table=True))

    def body(self, root, out: list[Block]) -> None:
        for child in root:
            if child.tag == f"{_W}p":
                self.paragraph(child, out)
            elif child.tag == f"{_W}tbl":
                self.table(child, out)
            elif child.tag in (f"{_W}sdt", f"{_W}customXml"):  # content controls wrap ordinary paragraphs
                content = child.find(f"{_W}sdtContent")
                self.body(content if content is not None else child, out)


def parse_docx(source: str | Path | IO[bytes]) -> Document:
    doc = docx.Document(str(source) if isinstance(source, Path) else source)
    out: list[Block] = []
    _Reader(doc).body(doc.element.body, out)
    return Document(out, title_hint=" ".join((doc.core_properties.title or "").split()))

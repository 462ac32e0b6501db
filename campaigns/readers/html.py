"""HTML -> blocks with selectolax (lexbor), never regexes: pages come with nav, scripts and footers.

Page chrome is removed first (script/style/nav/aside/footer/forms, hidden elements, a site
<header> without the page's <h1>), then the content root is chosen (<main>, else the
largest <article>, else <body>) and walked in document order. Inline text is gathered
with whitespace collapsed as a browser would, <br> kept as a line break.
"""

from __future__ import annotations

import re
from dataclasses import replace

from selectolax.lexbor import LexborHTMLParser, LexborNode

from campaigns.blocks import Block, Document
from campaigns.readers.plaintext import blocks_from_paragraph, split_marker

_NOISE = ", ".join([
    "script", "style", "noscript", "template", "nav", "aside", "footer", "form", "iframe", "svg",
    "canvas", "button", "select", "textarea", "input", "object", "embed", "audio", "video", "map",
    "[hidden]", "[aria-hidden=true]", "[role=navigation]", "[role=banner]", "[role=contentinfo]",
    "[role=search]", "[role=complementary]",
])
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_LISTS = {"ul": False, "ol": True, "menu": False}
# elements whose text is one paragraph of its own
_PARAS = {"p", "pre", "address", "figcaption", "dt", "dd", "caption", "summary", "legend"}
# elements that only group other blocks
_CONTAINERS = {
    "div", "section", "article", "main", "header", "blockquote", "figure", "table", "thead", "tbody",
    "tfoot", "tr", "td", "th", "dl", "center", "details", "fieldset", "body", "html", "hgroup", "search",
}
_BOLD = {"strong", "b"}
_WS = re.compile(r"[ \t\r\n\f\v]+")


def _is_text(node: LexborNode) -> bool:
    return node.tag == "-text"


def _children(node: LexborNode):
    child = node.child
    while child is not None:
        yield child
        child = child.next


def _is_block(node: LexborNode) -> bool:
    tag = node.tag or ""
    return tag in _HEADINGS or tag in _LISTS or tag in _PARAS or tag in _CONTAINERS or tag in ("li", "hr")


class _Inline:
    """Gathers a run of inline nodes into (text, leading bold text)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.bold: str | None = None  # leading bold, once found

    def add(self, node: LexborNode) -> None:
        if _is_text(node):
            self.parts.append(_WS.sub(" ", node.text_content or ""))
        elif node.tag == "br":
            self.parts.append("\n")
        elif node.tag in _BOLD and self.bold is None and not "".join(self.parts).strip():
            start = len(self.parts)
            for child in _children(node):
                self.add(child)
            self.bold = "".join(self.parts[start:]).strip()
        elif node.tag and not node.tag.startswith(("_", "!", "#")) and node.tag not in ("img",):
            for child in _children(node):
                self.add(child)

    def text(self) -> str:
        lines = ("".join(self.parts)).split("\n")
        return "\n".join(s for s in (line.strip() for line in lines) if s)

    def flush(self, out: list[Block], depth: int) -> None:
        text = self.text()
        if text:
            out.extend(blocks_from_paragraph(text, depth=depth, bold_title=self.bold or ""))
        self.parts, self.bold = [], None


def _walk(node: LexborNode, depth: int, out: list[Block]) -> None:
    """Children of a container: inline runs become paragraphs, block children are dispatched."""
    run = _Inline()
    for child in _children(node):
        if _is_block(child):
            run.flush(out, depth)
            _block(child, depth, out)
        else:
            run.add(child)
    run.flush(out, depth)


def _block(node: LexborNode, depth: int, out: list[Block]) -> None:
    tag = node.tag or ""
    if tag in _HEADINGS:
        _heading(node, out)
    elif tag in _LISTS:
        _list(node, depth, _LISTS[tag], out)
    elif tag == "li":  # a stray <li> outside a list
        _entry(node, depth, False, out)
    elif tag == "table":
        cells: list[Block] = []
        _walk(node, depth, cells)
        out.extend(replace(b, in_table=True) for b in cells)
    elif tag in _PARAS or tag in _CONTAINERS:
        _walk(node, depth, out)


def _heading(node: LexborNode, out: list[Block]) -> None:
    run = _Inline()
    run.add(node)
    text = " ".join(run.text().split("\n"))
    if not text:
        return
    level = _HEADINGS[node.tag]
    numbered, rest = split_marker(text)
    if numbered:  # <h3>2. Insomnia</h3>: an item written as a heading
        out.append(Block("item", rest, level=level, numbered=True))
    else:
        out.append(Block("heading", text, level=level))


def _list(node: LexborNode, depth: int, numbered: bool, out: list[Block]) -> None:
    for child in _children(node):
        if child.tag == "li":
            _entry(child, depth, numbered, out)
        elif child.tag in _LISTS:  # <ul><ul>..</ul></ul>: invalid but common
            _list(child, depth + 1, _LISTS[child.tag], out)
        elif _is_block(child):
            _block(child, depth + 1, out)
        else:
            run = _Inline()
            run.add(child)
            run.flush(out, depth + 1)


def _entry(node: LexborNode, depth: int, numbered: bool, out: list[Block]) -> None:
    """<li>: its leading inline text (or first <p>) is the item; everything after is nested."""
    children = list(_children(node))
    run = _Inline()
    i = 0
    while i < len(children) and not _is_block(children[i]):
        run.add(children[i])
        i += 1
    if not run.text() and i < len(children) and children[i].tag == "p":
        for c in _children(children[i]):
            run.add(c)
        i += 1
    text = run.text()
    if text:
        _, text = split_marker(text)  # "1. Title" typed inside an <ol>
        bold = run.bold or ""
        if bold:
            _, bold = split_marker(bold)
        bold = bold if text.startswith(bold) else ""
        out.append(Block("item", text, depth=depth, numbered=numbered, bold_title=bold))
    rest = _Inline()
    for c in children[i:]:
        if _is_block(c):
            rest.flush(out, depth + 1)
            _block(c, depth + 1, out)
        else:
            rest.add(c)
    rest.flush(out, depth + 1)


def _root(tree: LexborHTMLParser) -> LexborNode | None:
    main = tree.css_first("main, [role=main]")
    if main is not None:
        return main
    articles = tree.css("article")
    if articles:
        return max(articles, key=lambda a: len(a.text(deep=True) or ""))
    return tree.body


def html_blocks(html: str, *, depth: int = 0) -> list[Block]:
    """Blocks of an HTML fragment (also used for raw HTML inside Markdown)."""
    tree = LexborHTMLParser(html)
    for node in tree.css(_NOISE):
        node.decompose()
    out: list[Block] = []
    if tree.body is not None:
        _walk(tree.body, depth, out)
    return out


def parse_html(html: str) -> Document:
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title_hint = " ".join((title_node.text() if title_node is not None else "").split())
    title_hint = re.split(r"\s+[|·–—-]\s+", title_hint)[0] if title_hint else ""  # "Page | Clinic name"
    for node in tree.css(_NOISE):
        node.decompose()
    for header in tree.css("header"):
        if header.css_first("h1") is None:  # a site banner, not the article's own header
            header.decompose()
    out: list[Block] = []
    root = _root(tree)
    if root is not None:
        _walk(root, 0, out)
    return Document(out, title_hint=title_hint)

"""HTML -> blocks with selectolax (lexbor), never regexes: pages come with nav, scripts and footers.

Page chrome is removed first (script/style/nav/aside/footer/forms, hidden elements, a site
<header> without the page's <h1>), then the content root is chosen (<main>, else the
largest <article>, else <body>). Inside it, furniture goes by the hints themes and builders
put on it (a class/id part such as "entry-meta", "sharedaddy", "post-navigation",
"comments", "newsletter", "breadcrumb"; rel=author; aria-labels), by structure (lists and
paragraphs that are nearly all links; the short block around a byline's <time>), never by
one site's wording, and never an element holding half the article. An inline element that
wraps blocks is a container (a Google Docs paste is one <b style="font-weight:normal">);
bold comes from <b>/<strong> and from font-weight styles. Data tables become a line per
row ("Header: value"); layout tables are read cell by cell. Inline text is gathered with
whitespace collapsed as a browser would, <br> kept as a line break. Pages nested more than
MAX_DEPTH deep are refused with one line (no RecursionError).
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace

from selectolax.lexbor import LexborHTMLParser, LexborNode

from campaigns.blocks import Block, Document
from campaigns.readers.plaintext import blocks_from_paragraph, split_marker
from campaigns.readers.tables import table_lines
from drip.errors import DocumentError

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


_BLOCK_TAGS = frozenset(set(_HEADINGS) | set(_LISTS) | _PARAS | _CONTAINERS | {"li", "hr"})
_BLOCK_SELECTOR = ", ".join(sorted(_BLOCK_TAGS - {"html", "body"}))
_STATE = threading.local()  # .wraps: mem_ids of inline elements that wrap blocks, per parse and thread


def _wraps() -> set[int]:
    wraps = getattr(_STATE, "wraps", None)
    if wraps is None:
        wraps = _STATE.wraps = set()
    return wraps


def _is_block(node: LexborNode) -> bool:
    tag = node.tag or ""
    if tag in _BLOCK_TAGS:
        return True
    wraps = _wraps()
    return bool(wraps) and node.mem_id in wraps


_WEIGHT = re.compile(r"font-weight\s*:\s*([\w-]+)", re.I)


def _bold_style(node: LexborNode, inherited: bool) -> bool:
    """Bold from the tag and from an inline style (Google Docs and page builders style spans)."""
    bold = inherited or node.tag in _BOLD
    style = node.attributes.get("style") if node.attributes else None
    if style and (m := _WEIGHT.search(style)):
        w = m.group(1).lower()
        if w in ("bold", "bolder") or (w.isdigit() and int(w) >= 600):
            return True
        if w in ("normal", "lighter") or (w.isdigit() and int(w) < 600):
            return False
    return bold


class _Inline:
    """Gathers a run of inline nodes into (text, leading bold text)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.bold_parts: list[str] = []
        self.leading = True  # no non-bold text seen yet

    @property
    def bold(self) -> str:
        return "".join(self.bold_parts).strip()

    def add(self, node: LexborNode, bold: bool = False) -> None:
        if _is_text(node):
            t = _WS.sub(" ", node.text_content or "")
            self.parts.append(t)
            if self.leading:
                if t.strip():
                    if bold:
                        self.bold_parts.append(t)
                    else:
                        self.leading = False
                elif self.bold_parts:
                    self.bold_parts.append(t)
        elif node.tag == "br":
            self.parts.append("\n")
            if self.leading and self.bold_parts:
                self.leading = False  # "<b>Title</b><br>body": the bold title ends with the line
        elif node.tag and not node.tag.startswith(("_", "!", "#")) and node.tag not in ("img",):
            inner = _bold_style(node, bold)
            block = node.tag in _BLOCK_TAGS
            if block:
                self.parts.append(" ")
            for child in _children(node):
                self.add(child, inner)
            if block:
                self.parts.append(" ")

    def text(self) -> str:
        lines = ("".join(self.parts)).split("\n")
        return "\n".join(s for s in (line.strip() for line in lines) if s)

    def flush(self, out: list[Block], depth: int) -> None:
        text = self.text()
        if text:
            out.extend(blocks_from_paragraph(text, depth=depth, bold_title=self.bold))
        self.parts, self.bold_parts, self.leading = [], [], True


def _walk(node: LexborNode, depth: int, out: list[Block]) -> None:
    """Children of a container: inline runs become paragraphs, block children are dispatched."""
    run = _Inline()
    bold = _bold_style(node, False) if node.tag not in _BLOCK_TAGS else False
    for child in _children(node):
        if _is_block(child):
            run.flush(out, depth)
            _block(child, depth, out)
        else:
            run.add(child, bold)
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
        _table(node, depth, out)
    elif tag != "hr":  # paragraphs, containers and inline elements that wrap blocks
        _walk(node, depth, out)


def _rows(table: LexborNode):
    """(row, in <thead>?) of this table, not of tables nested in its cells."""
    for child in _children(table):
        if child.tag == "tr":
            yield child, False
        elif child.tag in ("thead", "tbody", "tfoot"):
            for tr in _children(child):
                if tr.tag == "tr":
                    yield tr, child.tag == "thead"


_LAYOUT = "table, ul, ol, h1, h2, h3, h4, h5, h6, blockquote"


def _table(node: LexborNode, depth: int, out: list[Block]) -> None:
    """A data table: a line per row ("Header: value"); a layout table (cells of blocks): its cells in order."""
    rows: list[list[str]] = []
    header = False
    caption = ""
    for child in _children(node):
        if child.tag == "caption":
            run = _Inline()
            run.add(child)
            caption = run.text()
    for k, (tr, in_head) in enumerate(_rows(node)):
        cells = [c for c in _children(tr) if c.tag in ("td", "th")]
        for c in cells:
            if c.css_first(_LAYOUT) is not None or len(c.css("p, div")) > 1:
                cells_out: list[Block] = []
                _walk(node, depth, cells_out)
                out.extend(replace(b, in_table=True) for b in cells_out)
                return
        texts = []
        for c in cells:
            run = _Inline()
            run.add(c)
            texts.append(" ".join(run.text().split("\n")))
        if k == 0 and cells and (in_head or all(c.tag == "th" for c in cells)):
            header = True
        rows.append(texts)
    lines = ([caption] if caption else []) + table_lines(rows, header_row=header)
    if lines:
        out.append(Block("para", "\n".join(lines), depth=depth, in_table=True))


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
        bold = run.bold
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


MAX_DEPTH = 250  # real pages nest 20-40 deep; the walk recurses once or twice per level


def _check_depth(tree: LexborHTMLParser) -> None:
    """Refuse absurd nesting before walking (a crafted page must not end in a RecursionError)."""
    root = tree.root
    if root is None:
        return
    stack = [(root, 0)]
    while stack:
        node, d = stack.pop()
        if d > MAX_DEPTH:
            raise DocumentError(f"HTML nested more than {MAX_DEPTH} elements deep; not an article page")
        child = node.child
        while child is not None:
            if child.tag != "-text":
                stack.append((child, d + 1))
            child = child.next


# Page furniture inside the article, by the hints themes and builders put on it: a class or id
# part ("entry-meta", "post-navigation", "sharedaddy"), a role or an aria-label.
_HINT = re.compile(
    r"(?:^|[-_\s])(?:by-?line|author|authors|author-?(?:box|bio|info|profile)|share|shares|sharing|sharedaddy|"
    r"social|related|relatedposts|post-?nav|navigation|nav-?links|pagination|pager|comments?|respond|disqus|"
    r"advert\w*|ads?|adsbygoogle|sponsor\w*|promo|newsletter|subscribe|subscription|sign-?up|opt-?in|"
    r"breadcrumbs?|crumbs|meta|entry-?meta|post-?meta|posted-?on|dateline|date|timestamp|published|tags|"
    r"tag-?links|cat-?links|categories|sidebar|widget-?area|cookies?|popup|modal|toc|table-of-contents|"
    r"footer|entry-?footer|post-?footer|read-?more|more-?posts)(?=$|[-_\s])",
    re.I,
)
_ARIA_HINT = re.compile(r"share|breadcrumb|related|comment|social|author|pagination|advert|newsletter", re.I)


def _alnum(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


def _link_list(node: LexborNode) -> bool:
    """A list or paragraph that is (nearly) all links: a menu, tag list, table of contents, post navigation."""
    links = node.css("a")
    if len(links) < 2:
        return False
    total = _alnum(node.text(deep=True) or "")
    linked = sum(_alnum(a.text(deep=True) or "") for a in links)
    return total > 0 and linked >= 0.8 * total


def _furniture(node: LexborNode) -> bool:
    attrs = node.attributes or {}
    hints = " ".join(v for k, v in attrs.items() if k in ("class", "id", "itemprop") and v)
    if hints and _HINT.search(hints):
        return True
    if (attrs.get("rel") or "") == "author":
        return True
    if (label := attrs.get("aria-label")) and _ARIA_HINT.search(label):
        return True
    return node.tag in ("ul", "ol", "p", "div", "section", "menu", "dl") and _link_list(node)


def _short_block_of(node: LexborNode, root: LexborNode) -> LexborNode | None:
    """The paragraph-sized block around a byline's <time> / author link, if it is short."""
    cur = node.parent
    while cur is not None and cur is not root and cur.tag not in _BLOCK_TAGS:
        cur = cur.parent
    if cur is None or cur.mem_id == root.mem_id or cur.tag in ("li", "td", "th"):
        return None
    return cur if len((cur.text(deep=True) or "").split()) <= 14 else None


def _decompose_outermost(nodes: list[LexborNode]) -> None:
    """Remove nodes, none after an ancestor of it was removed (a destroyed node's children are gone too)."""
    chosen: set[int] = set()
    keep: list[LexborNode] = []
    for node in nodes:
        if node.mem_id in chosen:
            continue
        cur, inside = node.parent, False
        while cur is not None:
            if cur.mem_id in chosen:
                inside = True
                break
            cur = cur.parent
        if not inside:
            chosen.add(node.mem_id)
            keep.append(node)
    for node in keep:
        node.decompose()


def _strip_furniture(root: LexborNode) -> None:
    total = _alnum(root.text(deep=True) or "")
    found = [node for node in root.css("*")
             if node.mem_id != root.mem_id and _furniture(node)
             and _alnum(node.text(deep=True) or "") < 0.5 * max(total, 1)]
    _decompose_outermost(found)
    bylines = [_short_block_of(node, root) or node
               for node in root.css("time, [rel=author], [itemprop=author], [itemprop=datePublished]")]
    _decompose_outermost(bylines)


def _mark_wrappers(root: LexborNode) -> None:
    """Inline elements that contain blocks act as containers (Google Docs wraps a paste in one <b>)."""
    wraps = _wraps()
    wraps.clear()
    seen: set[int] = set()
    for node in root.css(_BLOCK_SELECTOR):
        cur = node.parent
        while cur is not None and cur.mem_id != root.mem_id and cur.mem_id not in seen:
            seen.add(cur.mem_id)
            if cur.tag not in _BLOCK_TAGS:
                wraps.add(cur.mem_id)
            cur = cur.parent


def _read(root: LexborNode, depth: int) -> list[Block]:
    out: list[Block] = []
    _strip_furniture(root)
    _mark_wrappers(root)
    try:
        _walk(root, depth, out)
    finally:
        _wraps().clear()
    return out


def html_blocks(html: str, *, depth: int = 0) -> list[Block]:
    """Blocks of an HTML fragment (also used for raw HTML inside Markdown)."""
    tree = LexborHTMLParser(html)
    _check_depth(tree)
    _decompose_outermost(tree.css(_NOISE))
    return _read(tree.body, depth) if tree.body is not None else []


def parse_html(html: str) -> Document:
    tree = LexborHTMLParser(html)
    _check_depth(tree)
    title_node = tree.css_first("title")
    title_hint = " ".join((title_node.text() if title_node is not None else "").split())
    title_hint = re.split(r"\s+[|·–—-]\s+", title_hint)[0] if title_hint else ""  # "Page | Clinic name"
    _decompose_outermost(tree.css(_NOISE))
    # a site banner, not the article's own header
    _decompose_outermost([h for h in tree.css("header") if h.css_first("h1") is None])
    root = _root(tree)
    return Document(_read(root, 0) if root is not None else [], title_hint=title_hint)

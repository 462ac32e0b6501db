"""Markdown -> blocks with markdown-it-py (CommonMark + GFM tables), so list nesting and headings follow the spec.

YAML (---) and TOML (+++) front matter is metadata (its `title` is a title hint, never body).
Footnote markers are removed and their definitions kept as one "Sources:" note at the end.
Tables become a line per row. Only the structure is taken: emphasis and link markup are
dropped, their words kept; paragraphs and list runs that are all links (a captured page's
menu, share row, post navigation) are dropped. A heading that starts with a number ("### 2.
Insomnia") is an item written as a heading. Paragraphs go through the plain-text line rules,
because "•" or "2." inside a paragraph is not a CommonMark list but is one to the person who
typed it; "**Title.** body" lines typed without blank lines become a paragraph each.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from campaigns.blocks import Block, Document
from campaigns.readers.html import html_blocks
from campaigns.readers.plaintext import blocks_from_paragraph, split_marker
from campaigns.readers.tables import table_lines

_MD = MarkdownIt("commonmark").enable("table")  # GFM tables: page-to-markdown captures are full of them
# YAML (---) and TOML (+++, Hugo) front matter: metadata, not article text
_FRONT_MATTER = re.compile(
    r"\A\s*---[ \t]*\n((?:[ \t]*\n|#.*\n|[\w\"'-][\w \"'-]*[ \t]*:.*\n|[ \t]+.*\n|-[ \t].*\n)*?)(?:---|\.\.\.)[ \t]*(?:\n|\Z)"
)
_TOML = re.compile(r"\A\s*\+\+\+[ \t]*\n((?:.*\n){0,200}?)\+\+\+[ \t]*(?:\n|\Z)")
_FM_TITLE = re.compile(r"^title[ \t]*[:=][ \t]*(.+?)[ \t]*$", re.M)
# footnotes: "[^1]" markers in the text, "[^1]: Source." definitions (indented lines continue one)
_FN_DEF = re.compile(r"^\[\^[^\]\s]+\]:[ \t]*(.*(?:\n(?:    |\t).*)*)", re.M)
_FN_REF = re.compile(r"\[\^[^\]\s]+\]")


def front_matter(text: str) -> tuple[str, str]:
    """(title from the front matter or "", text with the front matter blanked out, line numbers kept)."""
    m = _FRONT_MATTER.match(text) or _TOML.match(text)
    if not m:
        return "", text
    title = _FM_TITLE.search(m.group(1))
    value = title.group(1).strip().strip("'\"") if title else ""
    return value, "\n" * m.group(0).count("\n") + text[m.end():]


def footnotes(text: str) -> tuple[list[str], str]:
    """(definition texts, text without markers or definitions; line numbers kept)."""
    notes: list[str] = []

    def take(m: re.Match[str]) -> str:
        notes.append(" ".join(m.group(1).split()))
        return "\n" * m.group(0).count("\n")

    text = _FN_DEF.sub(take, text)
    return [n for n in notes if n], _FN_REF.sub("", text)


def _inline_lines(token: Token) -> list[tuple[str, str]]:
    """(plain text, leading bold text) of each line of an inline token."""
    lines: list[tuple[str, str]] = []
    parts: list[str] = []
    bold: list[str] | None = None  # collecting the line's leading **bold** while not None
    bold_done = False
    strong = 0

    def end_line() -> None:
        lines.append(("".join(parts), "".join(bold).strip() if bold is not None and bold_done else ""))

    for child in token.children or []:
        t = child.type
        if t == "strong_open":
            strong += 1
            if not bold_done and bold is None and not "".join(parts).strip():
                bold = []
            continue
        if t == "strong_close":
            strong -= 1
            if bold is not None and strong == 0:
                bold_done = True
            continue
        if t in ("softbreak", "hardbreak") and strong == 0:
            end_line()
            parts, bold, bold_done = [], None, False
            continue
        if t in ("softbreak", "hardbreak"):
            piece = "\n"
        elif t in ("text", "code_inline"):
            piece = child.content
        else:  # em/link open-close, images, inline html: markup only
            continue
        parts.append(piece)
        if bold is not None and not bold_done:
            bold.append(piece)
    end_line()
    return lines


def _inline(token: Token) -> tuple[str, str]:
    """(plain text, leading bold text) of an inline token."""
    lines = _inline_lines(token)
    return "\n".join(t for t, _ in lines), lines[0][1] if lines else ""


def _link_only(token: Token) -> int:
    """How many links an inline token has when it is (nearly) all link text, else 0: menus, share rows."""
    links = linked = total = 0
    depth = 0
    for child in token.children or []:
        if child.type == "link_open":
            links, depth = links + 1, depth + 1
        elif child.type == "link_close":
            depth -= 1
        elif child.type in ("text", "code_inline"):
            n = sum(ch.isalnum() for ch in child.content)
            total += n
            linked += n if depth else 0
    return links if total and linked >= 0.8 * total else 0


def _drop_link_lists(blocks: list[Block], links: list[int]) -> list[Block]:
    """Paragraphs of two or more links, and runs of two or more link-only list entries, are page furniture."""
    keep = [True] * len(blocks)
    for k, b in enumerate(blocks):
        if b.kind == "para" and links[k] >= 2:
            keep[k] = False
    k = 0
    while k < len(blocks):
        j = k
        while j < len(blocks) and blocks[j].kind == "item" and links[j] >= 1 and blocks[j].depth == blocks[k].depth:
            j += 1
        if j - k >= 2:
            for m in range(k, j):
                keep[m] = False
        k = max(j, k + 1)
    return [b for b, ok in zip(blocks, keep) if ok]


def _bold_led(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A paragraph of "**Title.** body" lines typed without blank lines: one paragraph per bold-led line."""
    starts = [k for k, (t, b) in enumerate(lines) if b and len(b.split()) <= 12 and t.strip().startswith(b)]
    if len(starts) < 2:
        return [("\n".join(t for t, _ in lines), lines[0][1] if lines else "")]
    if starts[0] != 0:
        starts = [0, *starts]
    bounds = [*starts, len(lines)]
    return [("\n".join(t for t, _ in lines[a:b]), lines[a][1]) for a, b in zip(bounds, bounds[1:])]


def parse_markdown(text: str) -> Document:
    title_hint, text = front_matter(text)
    notes, text = footnotes(text)
    blocks: list[Block] = []
    rows: list[list[str]] | None = None  # the open GFM table's rows
    links: list[int] = []  # per block: links when its text is all links (see _link_only)
    lists: list[bool] = []  # numbered? for each open list
    entries: list[bool] = []  # for each open list entry: has its first paragraph been taken?
    heading: int | None = None
    for tok in _MD.parse(text):
        line = tok.map[0] + 1 if tok.map else 0
        t = tok.type
        if t in ("bullet_list_open", "ordered_list_open"):
            lists.append(t == "ordered_list_open")
        elif t in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif t == "list_item_open":
            entries.append(False)
        elif t == "list_item_close":
            entries.pop()
        elif t == "heading_open":
            heading = int(tok.tag[1])
        elif t == "heading_close":
            heading = None
        elif t == "table_open":
            rows = []
        elif t == "tr_open" and rows is not None:
            rows.append([])
        elif t == "table_close" and rows is not None:
            lines = table_lines(rows, header_row=True)
            if lines:
                blocks.append(Block("para", "\n".join(lines), depth=len(lists), line=line, in_table=True))
            rows = None
        elif t == "inline" and rows is not None:
            if rows:
                rows[-1].append(" ".join(_inline(tok)[0].split()))
        elif t == "inline":
            body, bold = _inline(tok)
            links += [0] * (len(blocks) - len(links))
            linky = _link_only(tok) if heading is None else 0
            if heading is not None:
                numbered, rest = split_marker(body.strip())
                if numbered:
                    blocks.append(Block("item", rest, level=heading, numbered=True, line=line))
                else:
                    blocks.append(Block("heading", body.strip(), level=heading, line=line))
            elif entries and not entries[-1]:
                entries[-1] = True
                _, body = split_marker(body.lstrip())  # "1. 1. Title" typed inside a list
                blocks.append(Block("item", body, depth=len(lists) - 1, numbered=lists[-1], bold_title=bold,
                                    line=line))
            else:
                for k, (part, part_bold) in enumerate(_bold_led(_inline_lines(tok))):
                    blocks.extend(blocks_from_paragraph(part, depth=len(lists), bold_title=part_bold,
                                                        line=line + k if line else 0))
            links += [linky] * (len(blocks) - len(links))
        elif t in ("fence", "code_block"):
            blocks.extend(blocks_from_paragraph(tok.content.strip("\n"), depth=len(lists), line=line))
        elif t == "html_block":
            blocks.extend(html_blocks(tok.content, depth=len(lists)))
    links += [0] * (len(blocks) - len(links))
    blocks = _drop_link_lists(blocks, links)
    if notes:  # kept, as one sources note at the end: never items, never lost
        blocks.append(Block("para", "\n".join(["Sources:", *notes])))
    return Document(blocks, title_hint=title_hint)

"""Markdown -> blocks with markdown-it-py (CommonMark), so list nesting and headings follow the spec.

YAML front matter is metadata (its `title:` is a title hint). Only the structure is taken:
emphasis and link markup are dropped, their words kept. A heading that starts with a number
("### 2. Insomnia") is an item written as a heading. Paragraphs go through the plain-text
line rules, because "•" or "2." inside a paragraph is not a CommonMark list but is one to
the person who typed it.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from campaigns.blocks import Block, Document
from campaigns.readers.html import html_blocks
from campaigns.readers.plaintext import blocks_from_paragraph, split_marker

_MD = MarkdownIt("commonmark")
# YAML front matter (static-site generators, CMS exports): metadata, not article text
_FRONT_MATTER = re.compile(
    r"\A---[ \t]*\n((?:[ \t]*\n|[\w-]+[ \t]*:.*\n|[ \t]+.*\n|-[ \t].*\n)*?)(?:---|\.\.\.)[ \t]*(?:\n|\Z)"
)
_FM_TITLE = re.compile(r"^title[ \t]*:[ \t]*(.+?)[ \t]*$", re.M)


def front_matter(text: str) -> tuple[str, str]:
    """(title from the front matter or "", text with the front matter blanked out, line numbers kept)."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return "", text
    title = _FM_TITLE.search(m.group(1))
    value = title.group(1).strip().strip("'\"") if title else ""
    return value, "\n" * m.group(0).count("\n") + text[m.end():]


def _inline(token: Token) -> tuple[str, str]:
    """(plain text, leading bold text) of an inline token."""
    parts: list[str] = []
    bold: list[str] | None = None  # collecting the leading **bold** while not None
    bold_done = False
    strong = 0
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
        if t in ("softbreak", "hardbreak"):
            piece = "\n"
        elif t in ("text", "code_inline"):
            piece = child.content
        else:  # em/link open-close, images, inline html: markup only
            continue
        parts.append(piece)
        if bold is not None and not bold_done:
            bold.append(piece)
    return "".join(parts), ("".join(bold).strip() if bold is not None and bold_done else "")


def parse_markdown(text: str) -> Document:
    title_hint, text = front_matter(text)
    blocks: list[Block] = []
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
        elif t == "inline":
            body, bold = _inline(tok)
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
                blocks.extend(blocks_from_paragraph(body, depth=len(lists), bold_title=bold,
                                                    line=line))
        elif t in ("fence", "code_block"):
            blocks.extend(blocks_from_paragraph(tok.content.strip("\n"), depth=len(lists), line=line))
        elif t == "html_block":
            blocks.extend(html_blocks(tok.content, depth=len(lists)))
    return Document(blocks, title_hint=title_hint)

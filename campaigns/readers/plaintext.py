"""Plain text -> blocks, and the line rules every other reader reuses for hand-typed lists.

People type "1. Title:", "2) Title", "- body", "• body" into Word paragraphs, HTML <p>s and
Markdown paragraphs as often as into .txt files, so list markers found in any paragraph's
lines become items here. Only plain text has meaningful indentation (nesting), "#" headings
and underlined ("====") headings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from campaigns.blocks import Block, BlockKind, Document

# "1." "1)" "(1)" with up to 3 digits (so "2019. was" is not a list), or a bullet character;
# a marker must be followed by whitespace and text ("*Journal*" and "-5%" are not lists).
_MARKER = re.compile(r"^(?:(?P<num>\(?\d{1,3}[.)])|[-*+•·▪◦‣●○■□➢➤►–—])\s+(?=\S)")
_RULE = re.compile(r"^([-=_*~#•])(?:\s*\1){2,}$")  # ----, ====, * * *
_ATX = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?$")
_BOLD = re.compile(r"^(\*\*|__)(?=\S)(.+?)(?<=\S)\1")


def split_marker(line: str) -> tuple[bool | None, str]:
    """(numbered?, text after the marker); (None, line) when the line is not a list entry."""
    m = _MARKER.match(line)
    if not m:
        return None, line
    return m.group("num") is not None, line[m.end():]


def leading_bold(text: str) -> tuple[str, str]:
    """Markdown-style bold typed into plain text: ("Insomnia:", text without the asterisks)."""
    m = _BOLD.match(text)
    if not m:
        return "", text
    return m.group(2), m.group(2) + text[m.end():]


@dataclass
class _Open:
    kind: BlockKind
    depth: int
    line: int
    numbered: bool = False
    lines: list[str] = field(default_factory=list)

    def block(self, plain: bool) -> Block:
        text = "\n".join(self.lines)
        bold = ""
        if plain:
            bold, text = leading_bold(text)
        return Block(self.kind, text, depth=self.depth, numbered=self.numbered, bold_title=bold, line=self.line)


def _nest(stack: list[int], indent: int) -> int:
    while stack and stack[-1] > indent:
        stack.pop()
    if not stack or stack[-1] < indent:
        stack.append(indent)
    return len(stack) - 1


def blocks_from_lines(lines: Iterable[str], *, depth: int = 0, first_line: int = 1, plain: bool = True) -> list[Block]:
    """Blank lines end blocks; a marker line starts an item; other lines continue the open block.

    `plain` turns on the rules that only make sense in a .txt file: indentation nesting,
    "# Heading" and underlined headings.
    """
    out: list[Block] = []
    cur: _Open | None = None
    stack: list[int] = []  # indents of the list entries that are open (plain text nesting)
    last_line = 0

    def close() -> None:
        nonlocal cur
        if cur is not None:
            out.append(cur.block(plain))
            cur = None

    for n, raw in enumerate(lines, first_line):
        line = raw.expandtabs(4).rstrip()
        s = line.strip()
        if not s:
            close()
            continue
        indent = len(line) - len(line.lstrip())
        if plain and _RULE.match(s):
            if cur and cur.kind == "para" and len(cur.lines) == 1 and last_line == n - 1 and s[0] in "=-":
                out.append(Block("heading", cur.lines[0], level=1 if s[0] == "=" else 2, line=cur.line))
                cur = None
                stack.clear()
            close()  # a decorative rule carries no words
            last_line = n
            continue
        if plain and (m := _ATX.match(s)):
            close()
            stack.clear()
            out.append(Block("heading", m.group(2), level=len(m.group(1)), line=n))
            last_line = n
            continue
        numbered, rest = split_marker(s)
        if numbered is not None:
            close()
            d = depth + (_nest(stack, indent) if plain else 0)
            cur = _Open("item", d, n, numbered, [rest.strip()])
        elif cur is not None:
            cur.lines.append(s)
        else:
            d = depth
            if plain:
                if indent == 0:
                    stack.clear()
                d += sum(1 for i in stack if i < indent)
            cur = _Open("para", d, n, lines=[s])
        last_line = n
    close()
    return out


def blocks_from_paragraph(text: str, *, depth: int = 0, bold_title: str = "", line: int = 0) -> list[Block]:
    """One paragraph of a marked-up document (already whitespace-normalised, "\\n" for <br>)."""
    blocks = blocks_from_lines(text.split("\n"), depth=depth, first_line=max(line, 1), plain=False)
    if not line:
        blocks = [Block(b.kind, b.text, b.level, b.depth, b.numbered, b.bold_title, 0) for b in blocks]
    bold = bold_title.strip()
    if blocks and bold:
        first = blocks[0]
        if first.kind == "item":
            _, bold = split_marker(bold)  # <strong>1. Title:</strong>: the number is not part of the title
        if first.text.startswith(bold):
            blocks[0] = Block(first.kind, first.text, first.level, first.depth, first.numbered, bold, first.line)
    return blocks


def parse_text(text: str) -> Document:
    return Document(blocks_from_lines(text.split("\n")))

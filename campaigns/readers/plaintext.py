"""Plain text -> blocks, and the line rules every other reader reuses for hand-typed lists.

People type "1. Title:", "2) Title", "- body", "• body", "Tip 3: Title" into Word paragraphs,
HTML <p>s and Markdown paragraphs as often as into .txt files, so list markers found in any
paragraph's lines become items here. Only plain text has meaningful indentation (nesting),
"#" headings, underlined ("====") headings, Word's pasted sub-bullets ("o", "◦", "▪", "–"
under "•") and hard wrapping (lines broken at a fixed column, e.g. 72, are rejoined when the
next word would not have fitted). A forwarded or raw email is unwrapped first
(readers.email_text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from campaigns.blocks import Block, BlockKind, Document

# "1." "1)" "(1)" with up to 3 digits (so "2019. was" is not a list), or a bullet character;
# a marker must be followed by whitespace and text ("*Journal*" and "-5%" are not lists).
_MARKER = re.compile(r"^(?:(?P<num>\(?\d{1,3}[.)])|(?P<bullet>[-*+•·▪◦‣●○■□➢➤►–—]|o(?=[ \t])))\s+(?=\S)")
_SUB_BULLETS = ("o", "◦", "▪", "–", "○", "‣")  # Word's second-level bullets, pasted as text
# "Tip 3: ", "Benefit 1 – ", "Step 2. ": a label and a number in place of a list marker
_LABEL = re.compile(r"^(?P<word>[A-Z][a-z]{1,11})\s+#?\d{1,2}\s*(?:[:.)]|\s[-–—])\s+(?=\S)")
_NOT_LABELS = {"Figure", "Fig", "Table", "Chapter", "Section", "Page", "Part", "Vol", "Volume", "Issue", "Room",
               "Suite", "Unit", "Floor", "Level", "Article", "Appendix", "Psalm", "John", "Version", "Box"}
# "Sleep Hygiene: body" lines typed without blank lines between them
_TITLED_LINE = re.compile(r"^(?:\*\*|__)?[A-Z][\w'’-]*(?: [\w'’&-]+){0,5}(?:\*\*|__)?\s*:(?:\*\*|__)?\s+\S")
_RULE = re.compile(r"^([-=_*~#•])(?:\s*\1){2,}$")  # ----, ====, * * *
_ATX = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?$")
_BOLD = re.compile(r"^(\*\*|__)(?=\S)(.+?)(?<=\S)\1")


def split_marker(line: str) -> tuple[bool | None, str]:
    """(numbered?, text after the marker); (None, line) when the line is not a list entry."""
    m = _MARKER.match(line)
    if not m:
        return None, line
    return m.group("num") is not None, line[m.end():]


def split_label(line: str) -> tuple[str, str]:
    """("Tip 3: ", rest) when a line starts with a numbered label; ("", line) otherwise."""
    m = _LABEL.match(line)
    if not m or m.group("word") in _NOT_LABELS:
        return "", line
    return line[:m.end()], line[m.end():]


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
    label: str = ""

    def blocks(self, plain: bool) -> list[Block]:
        parts = [self.lines]
        if self.kind == "para" and len(self.lines) >= 2:
            starts = [k for k, s in enumerate(self.lines) if _TITLED_LINE.match(s)]
            if len(starts) >= 2:  # "Title: body" entries typed without blank lines: a paragraph each
                starts = starts if starts[0] == 0 else [0, *starts]
                bounds = [*starts, len(self.lines)]
                parts = [self.lines[a:b] for a, b in zip(bounds, bounds[1:])]
        out = []
        for k, lines in enumerate(parts):
            text = "\n".join(lines)
            bold = ""
            if plain:
                bold, text = leading_bold(text)
            out.append(Block(self.kind, text, depth=self.depth, numbered=self.numbered, bold_title=bold,
                             line=self.line + sum(len(p) for p in parts[:k]), label=self.label))
        return out


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
    lines = list(lines)
    out: list[Block] = []
    cur: _Open | None = None
    stack: list[int] = []  # indents of the list entries that are open (plain text nesting)
    last_line = 0

    width = _wrap_width(lines) if plain else 0
    soft = False  # the previous line was wrapped, not broken: the next one continues it
    main_item: tuple[int, int] | None = None  # (indent, depth) of the last top-level-style bullet

    def close() -> None:
        nonlocal cur
        if cur is not None:
            out.extend(cur.blocks(plain))
            cur = None

    for n, raw in enumerate(lines, first_line):
        line = raw.expandtabs(4).rstrip()
        s = line.strip()
        was_soft, soft = soft, False
        if not s:
            close()
            main_item = None
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
        label = ""
        if numbered is None:
            label, rest = split_label(s)
            numbered = True if label else None
        if numbered is not None:
            close()
            d = depth + (_nest(stack, indent) if plain else 0)
            sub = not label and s.startswith(_SUB_BULLETS)
            if sub and main_item is not None and main_item[0] >= indent:  # "o" under "•" at the same indent
                d = main_item[1] + 1
            elif not sub:
                main_item = (indent, d)
            cur = _Open("item", d, n, numbered, [rest.strip()], label=label)
        elif cur is not None:
            if was_soft and cur.lines:
                cur.lines[-1] += " " + s
            else:
                cur.lines.append(s)
        else:
            d = depth
            if plain:
                if indent == 0:
                    stack.clear()
                d += sum(1 for i in stack if i < indent)
            cur = _Open("para", d, n, lines=[s])
        if width:
            nxt = lines[n - first_line + 1] if n - first_line + 1 < len(lines) else ""
            nxt_s = nxt.strip()
            first_word = nxt_s.split(" ", 1)[0] if nxt_s else ""
            soft = bool(first_word) and len(s.split()) >= 6 and len(line) + 1 + len(first_word) > width \
                and split_marker(nxt_s)[0] is None and not split_label(nxt_s)[0] and not _RULE.match(nxt_s)
        last_line = n
    close()
    return out


def _wrap_width(lines: list[str] | Iterable[str]) -> int:
    """The column a hard-wrapped text was wrapped at (e.g. 72), or 0 when its lines are not wrapped."""
    lengths = [len(x.rstrip()) for x in lines if x.strip()]
    if len(lengths) < 5:
        return 0
    width = max(lengths)
    if not 40 <= width <= 100:
        return 0
    near = sum(1 for n in lengths if n >= width - 12)
    return width if near >= 3 and near >= len(lengths) // 4 else 0


def blocks_from_paragraph(text: str, *, depth: int = 0, bold_title: str = "", line: int = 0) -> list[Block]:
    """One paragraph of a marked-up document (already whitespace-normalised, "\\n" for <br>)."""
    blocks = blocks_from_lines(text.split("\n"), depth=depth, first_line=max(line, 1), plain=False)
    if not line:
        blocks = [replace(b, line=0) for b in blocks]
    bold = bold_title.strip()
    if blocks and bold:
        first = blocks[0]
        if first.kind == "item":
            _, bold = split_marker(bold)  # <strong>1. Title:</strong>: the number is not part of the title
            if first.label:
                bold = split_label(bold)[1]  # <b>Tip 1: Title</b>: nor is the label
        if first.text.startswith(bold):
            blocks[0] = replace(first, bold_title=bold)
    return blocks


def parse_text(text: str) -> Document:
    from campaigns.readers.email_text import unwrap_email

    text, subject = unwrap_email(text)
    return Document(blocks_from_lines(text.split("\n")), title_hint=subject)

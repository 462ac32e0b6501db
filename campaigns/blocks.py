"""The neutral block model every document reader produces and the splitter consumes.

Readers only report what the format says (a heading, a list entry, a paragraph, a bold run);
all guessing about titles and sections happens once, in `campaigns.split`, so .txt, .md,
.html and .docx documents are split by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "item", "para"]


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str  # visible text, list marker removed; line breaks kept as "\n"
    level: int = 0  # heading: 0 = document-title style, 1-6; item: heading level if written as "### 2. Title"
    depth: int = 0  # list nesting: 0 top level; nested lists and paragraphs inside a list entry are deeper
    numbered: bool = False  # item: "1." / "1)" / <ol> / Word "List Number" (else a bullet)
    bold_title: str = ""  # leading bold text (**x**, <strong>, a bold run), as written
    line: int = 0  # 1-based source line when the format has lines, else 0
    in_table: bool = False  # text from a table cell: never taken for a heading
    label: str = ""  # "Tip 3: " typed before the text in place of a list marker (kept if not an item)


@dataclass(frozen=True)
class Document:
    blocks: list[Block] = field(default_factory=list)
    title_hint: str = ""  # e.g. HTML <title> or Word document properties; used only if no heading fits

"""Helpers for the splitter tests: build .docx files with python-docx, count words the way the contract does."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import docx

from campaigns.draft import Draft

WORD = re.compile(r"\w+")


def words(*texts: str) -> Counter[str]:
    """The splitter's notion of text: word tokens (letters/digits), punctuation and markers ignored."""
    out: Counter[str] = Counter()
    for text in texts:
        out.update(WORD.findall(text))
    return out


def draft_words(draft: Draft) -> Counter[str]:
    """Words of a draft: title, each section heading once per run of steps, item titles, texts."""
    parts = [draft.title]
    previous = None
    for step in draft.steps:
        if step.section and step.section != previous:
            parts.append(step.section)
        previous = step.section
        if step.kind == "item":
            parts.append(step.title)
        parts.append(step.text)
    return words(*parts)


def add_runs(paragraph, runs: list[tuple[str, bool]]) -> None:
    for text, bold in runs:
        run = paragraph.add_run(text)
        run.bold = bold or None


def build_docx(path: Path, spec: list[tuple]) -> Path:
    """spec entries: (style, text) or (style, [(text, bold), ...]); style None = Normal."""
    doc = docx.Document()
    for style, content in spec:
        p = doc.add_paragraph(style=style)
        add_runs(p, [(content, False)] if isinstance(content, str) else content)
    doc.save(str(path))
    return path

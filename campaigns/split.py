"""Split a document into drip steps: one `item` step per titled list entry, the rest kept as intro/outro.

Readers turn every format into neutral blocks first, so these rules apply alike to .txt,
.md, .html and .docx. Why each rule: real articles are pasted, retyped and messy.

Headings: markup headings, plus a top-level one-line paragraph that starts with a capital or
digit, has <= 14 words, no closing . ! , ; or lead-in ":", and has content after it. So a
lower-case stray fragment ("nervous system") stays text. A heading with nothing under it is
joined to the next ("Conditions — Pain"); one with nothing after it at all is text.

Title: a heading before the first item that outranks all others (a lone <h1>), else the
first heading unless an item follows it directly (then it heads a list); else the format's
hint (<title>, Word properties, front matter), else the file name.

Items: a list entry ("1." "1)" "(1)" "-" "*" "•", <li>, Word list paragraph, "### 2. Title")
with a title: a leading bold run; a first line ending in ":" or " -"; "Title: body" or
"Title – Body" on one line (title <= 8 words, Title Case or the body capitalised); a short
first line with the body on the next lines; or a short entry (<= 12 words, no closing
punctuation) with body text after it, unless it is one of a run of such entries (a plain list).

Paragraph items (no list marker): "**Stretch first.** body" (a bold lead; a closing period
is fine), "Bloating:" over its body, "Cucumber: Cooling and hydrating." (Title Case title,
capitalised body). A section needs two or more of one kind, so a lone "Note: ..." stays text
and the first entry of a section is never lost to its intro. "Tip 3: Title" / "Step 2 – Title"
lines are list entries whose marker is the label (readers.plaintext.split_label); kept in the
text when the entry turns out to be untitled ("Step 1: Wash your hands.").

Bodies: an entry whose body is inline or nested takes only what is nested under it. A
title-only entry takes what follows up to the next heading or titled entry of its own marker
kind: paragraphs, sentence bullets and bullets of the other kind ("- body" under "1. Title:");
a paragraph after those bullets ends it. A paragraph item's body runs to the next item or
heading, except that the last of a run keeps only its own paragraph. A sign-off ("Warm
regards,") is never a body. Numbers are never read, so gaps cannot merge items.

Not items: entries of a References / Sources / FAQ / Questions / Key takeaways / Summary
section (its sub-headings and questions become its text), questions as bold leads, untitled
bullet lists, untitled procedure steps. Decision for FAQs: the whole FAQ section is ONE text
step (kind intro/outro by position, section "FAQ"), i.e. one FAQ email, never one per question.

Everything else becomes `intro` (before the items of the document or its section) or `outro`
steps. Nothing is dropped or reworded: title + section headings (once per run of steps) +
item titles + step texts hold exactly the document's words, minus list markers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from campaigns.blocks import Block, Document
from campaigns.documents import DocumentError, read_document
from campaigns.draft import Draft, DraftStep
from campaigns.subjects import preheader_for, subject_for

_INFERRED = 7  # level of a heading recognised from a plain paragraph: below every markup heading
_TITLE_END = re.compile(r"(?:\s*:|\s+[-–—])+\s*$")  # "Title:" "Title -"
_SENTENCE_BREAK = re.compile(r"\b[a-z]{3,}[.!?]\s+\S")  # "... is good. Then"; "Dr. Smith" is not a break
_INLINE_COLON = re.compile(r"^([^:\n]{1,80}?):\s+(\S.*)$")
_INLINE_DASH = re.compile(r"^(.{1,80}?)\s+[-–—]\s+(\S.*)$")
_BODY_LEAD = re.compile(r"^\s*(?:[:.\-–—]\s*)?")  # "**Insomnia**: body" -> "body"


def clean_title(text: str) -> str:
    """One line, trailing ':' / ' -' removed; wording otherwise untouched."""
    return _TITLE_END.sub("", " ".join(text.split())).strip()


def _title_like(text: str, max_words: int = 12, max_len: int = 90) -> bool:
    core = clean_title(text)
    if not core or len(core) > max_len or not any(c.isalpha() for c in core):
        return False
    if len(core.split()) > max_words or core.endswith(tuple(".!,;…")):
        return False
    return not _SENTENCE_BREAK.search(core)


def _title_case(text: str) -> bool:
    words = re.findall(r"[^\W\d_][\w'’-]*", text)
    significant = [w for w in words if len(w) > 3] or words[:1]
    return bool(significant) and all(w[0].isupper() for w in significant)


def _heading_like(text: str, bold: bool) -> bool:
    s = text.strip()
    first = re.search(r"\w", s)
    if first is None or "\n" in s or not (s[first.start()].isupper() or s[first.start()].isdigit()):
        return False
    if s.endswith(":") and not bold:  # "Here are the common types:" leads into a list
        return False
    return _title_like(s, max_words=14, max_len=100)


@dataclass(frozen=True)
class _Head:
    title: str
    body: str  # inline body ("" when the body is on following lines)
    explicit: bool  # punctuation, layout or a heading says "this is a title"
    bold: bool = False


def item_head(block: Block) -> _Head | None:
    """The title (and inline body) of a list entry, or None when the entry is just text."""
    text = block.text.strip()
    if block.kind != "item" or not text:
        return None
    first, _, rest = text.partition("\n")
    rest = rest.strip()
    if block.level:  # "### 2. Title": a heading is a title whatever its length
        return _Head(clean_title(first), rest, True)
    bold = block.bold_title.strip()
    if bold and text.startswith(bold) and _title_like(bold):
        body = _BODY_LEAD.sub("", text[len(bold):], count=1).strip()
        return _Head(clean_title(bold), body, bool(body) or bool(_TITLE_END.search(bold)), bold=True)
    if _TITLE_END.search(first) and _title_like(first):
        return _Head(clean_title(first), rest, True)
    for pattern, needs_case in ((_INLINE_COLON, False), (_INLINE_DASH, True)):
        m = pattern.match(first)
        if m and _title_like(m.group(1), max_words=8):
            left, right = m.group(1), m.group(2)
            ok = (left[0].isupper() and right[0].isupper()) if needs_case else (_title_case(left) or right[0].isupper())
            if ok:
                return _Head(clean_title(left), "\n".join(p for p in (right, rest) if p), True)
    if rest and _title_like(first) and (_title_case(first) or len(first) <= 40):
        return _Head(clean_title(first), rest, True)
    if not rest and _title_like(first):
        return _Head(clean_title(first), "", False)
    return None


# a sign-off line ("Warm regards,", "See you soon,"): never the body of the item above it
_CLOSING = re.compile(
    r"^(?:warm(?:est)?(?: regards| wishes)?|kind(?:est)? regards|best(?: wishes| regards)?|regards|sincerely|"
    r"yours(?: truly| sincerely)?|with (?:warm |best |kind )?(?:wishes|regards|thanks|love|care)|take care|be well|"
    r"stay well|in (?:good )?health|cheers|many thanks|thank you|thanks|see you\b.*|until next time|"
    r"talk soon|love)\s*[,!.]?\s*$",
    re.I,
)
# sections whose entries are never items: the reader wants them kept, but in one email
# (a FAQ email, the sources, the summary) rather than one email per question or citation
_NOT_ITEMS = re.compile(
    r"^(?:(?:faqs?|frequently asked questions?)\b.*|"
    r"(?:references?|sources?|citations?|bibliography|further reading|footnotes|notes|"
    r"(?:common |your )?questions(?: and answers)?|q ?& ?a|(?:key |main )?takeaways?|summary|in summary|to sum up|"
    r"tl;? ?dr|at a glance|(?:the )?bottom line|in a nutshell|quick facts|highlights|recap)\s*[:.]?)$",
    re.I,
)


def _closing(block: Block) -> bool:
    return block.kind == "para" and bool(_CLOSING.match(block.text.split("\n", 1)[0].strip()))


def para_head(block: Block) -> tuple[str, _Head] | None:
    """(kind, head) when a paragraph is written like an item without a list marker.

    "**Stretch first.** body" (a bold lead, a closing period allowed), "Bloating:" over its
    body, "Cucumber: Cooling and hydrating." (Title Case, capitalised body). The caller
    only takes them as items when a section has two or more of one kind, so a lone
    "Note: ..." stays text. Questions are not titles here: FAQs stay together.
    """
    if block.kind != "para" or block.depth or block.in_table or block.label:
        return None
    text = block.text.strip()
    first, _, rest = text.partition("\n")
    bold = block.bold_title.strip()
    if bold and text.startswith(bold) and len(bold) < len(text):
        core = bold.rstrip(".!").rstrip()
        if not bold.endswith("?") and _title_like(core, max_words=12) and core[:1].isupper():
            body = _BODY_LEAD.sub("", text[len(bold):], count=1).strip()
            if body:
                return "bold", _Head(clean_title(core), body, True, bold=True)
    if rest and first.endswith(":") and _title_like(first, max_words=8) and first[:1].isupper():
        return "colon", _Head(clean_title(first), rest.strip(), True)
    m = _INLINE_COLON.match(first)
    if m and _title_like(m.group(1), max_words=6) and _title_case(m.group(1)) and m.group(2)[:1].isupper():
        body = "\n".join(p for p in (m.group(2), rest.strip()) if p)
        return "inline", _Head(clean_title(m.group(1)), body, True)
    return None


class _Splitter:
    def __init__(self, blocks: list[Block]) -> None:
        self.blocks = blocks
        self.heads = [item_head(b) for b in blocks]
        cand = [self._candidate(b) for b in blocks]
        last_content = max((i for i, c in enumerate(cand) if c is None), default=-1)
        # headings with no content after them are text
        self.levels = [c if i < last_content else None for i, c in enumerate(cand)]
        self._exclude_sections()
        self.para_item = [False] * len(blocks)
        self._para_items()

    def _exclude_sections(self) -> None:
        """Under a References/FAQ/Key takeaways heading: no items, and its sub-headings are its text."""
        self.excluded = [False] * len(self.blocks)
        rank: int | None = None  # level of the open excluded heading
        for i, b in enumerate(self.blocks):
            lv = self.levels[i]
            if lv is not None or (b.kind == "item" and b.level):
                own = lv if lv is not None else b.level
                question = own == _INFERRED and b.text.strip().endswith("?")
                if rank is not None and (own > rank or question):  # a question or sub-heading inside the FAQ
                    self.levels[i] = None
                    self.excluded[i] = True
                    continue
                rank = own if _NOT_ITEMS.match(clean_title(b.text)) and lv is not None else None
                continue
            if b.kind == "para" and b.depth == 0 and _NOT_ITEMS.match(b.text.strip()) and \
                    len(b.text.split()) <= 4 and "\n" not in b.text.strip():
                rank = _INFERRED  # "Key takeaways:" typed as a line of its own
                continue
            self.excluded[i] = rank is not None

    def _para_items(self) -> None:
        """Paragraphs written as items (see para_head): two or more of a kind in a section."""
        section: list[tuple[int, str, _Head]] = []

        def close() -> None:
            kinds: dict[str, int] = {}
            for _, kind, _ in section:
                kinds[kind] = kinds.get(kind, 0) + 1
            for i, kind, head in section:
                if kinds[kind] >= 2:
                    self.heads[i], self.para_item[i] = head, True
            section.clear()

        for i, b in enumerate(self.blocks):
            if self.levels[i] is not None or (b.kind == "item" and b.level):
                close()
                continue
            if self.excluded[i]:
                continue
            found = para_head(b)
            if found is not None:
                section.append((i, *found))
        close()

    @staticmethod
    def _candidate(b: Block) -> int | None:
        if b.kind == "heading":
            return b.level
        if b.kind == "para" and b.depth == 0 and not b.in_table:
            all_bold = b.bold_title.strip() == b.text.strip()
            return _INFERRED if _heading_like(b.text, all_bold) else None
        return None

    # -- items ---------------------------------------------------------------------------

    def _absorbs(self, i: int, j: int, has_body: bool) -> bool:
        """Does block j belong to the body of item i?"""
        t, head, c = self.blocks[i], self.heads[i], self.blocks[j]
        assert head is not None
        if self.para_item[j] or _closing(c) or (self.excluded[j] and not self.excluded[i]):
            return False
        if self.para_item[i]:
            return self._para_absorbs(i, j)
        if t.level:  # "### 2. Title": everything up to the next heading of its rank, or heading-item
            if c.kind == "heading" and self.levels[j] is not None:
                return c.level > t.level
            return not (c.kind == "item" and c.level)
        if self.levels[j] is not None:  # a short line right under "1. Title:" is its body, not a heading
            return c.kind == "para" and not has_body and head.explicit
        if c.depth > t.depth:
            return True
        if c.depth < t.depth or head.body:  # an inline body is complete; it takes only nested blocks
            return False
        if has_body and self.blocks[i + 1].depth > t.depth:  # a body given by nesting ends with the nesting
            return False
        if c.kind == "item":
            ch = self.heads[j]
            if c.level:
                return False
            if c.numbered == t.numbered:  # a sibling: stop at any titled one
                return ch is None
            return not (ch is not None and ch.bold)  # "- body" bullets under "1. Title:"
        # loose paragraphs after a title-only entry, but not after its list of body bullets:
        # "1. Title:" + "- point" lines + a paragraph -> the paragraph is the document's again
        return not (has_body and self.blocks[j - 1].kind == "item")

    def _para_absorbs(self, i: int, j: int) -> bool:
        """A paragraph item's body runs to the next item or heading; the last one of its run keeps
        only its own paragraph when it has one (what follows the run is the article's close)."""
        c = self.blocks[j]
        if self.levels[j] is not None or (c.kind == "item" and (c.level or self.item(j) is not None)):
            return False
        if self.heads[i] is not None and self.heads[i].body:  # type: ignore[union-attr]
            later = next((k for k in range(j, len(self.blocks))
                          if self.para_item[k] or self.levels[k] is not None or self.blocks[k].level), None)
            if later is None or not self.para_item[later]:
                return False
        return True

    def _bare_list(self, i: int) -> bool:
        """Entry i directly follows a same-kind entry that has no body: a plain list, not items."""
        if i == 0:
            return False
        p, b, ph = self.blocks[i - 1], self.blocks[i], self.heads[i - 1]
        return (p.kind == "item" and not p.level and p.depth == b.depth and p.numbered == b.numbered
                and ph is not None and not ph.body and not ph.explicit)

    def item(self, i: int) -> _Head | None:
        head = self.heads[i]
        if head is None or self.levels[i] is not None or self.excluded[i]:
            return None
        if head.explicit:
            return head
        if self._bare_list(i) or i + 1 >= len(self.blocks):
            return None
        nxt = self.blocks[i + 1]
        if nxt.depth > self.blocks[i].depth:
            return head
        if self.levels[i + 1] is not None:  # a weak title does not swallow a heading
            return None
        return head if self._absorbs(i, i + 1, has_body=False) else None

    def group(self, i: int) -> bool:
        """An entry whose only content is two or more nested titled entries acts as a heading."""
        b, head = self.blocks[i], self.heads[i]
        if b.kind != "item" or head is None or head.body or b.level:
            return False
        children = 0
        for c, ch in zip(self.blocks[i + 1:], self.heads[i + 1:]):
            if c.depth <= b.depth:
                break
            if c.depth == b.depth + 1:
                if c.kind != "item" or ch is None or not (ch.bold or (ch.explicit and ch.body)):
                    return False
                children += 1
        return children >= 2

    # -- document ------------------------------------------------------------------------

    def title_index(self) -> int | None:
        heads = [i for i, lv in enumerate(self.levels) if lv is not None]
        first_item = next((i for i in range(len(self.blocks)) if self.item(i) is not None), len(self.blocks))
        if not heads or heads[0] > first_item:
            return None
        before = [h for h in heads if h < first_item]
        top = min(before, key=lambda h: self.levels[h])  # the first of the highest rank
        if all(self.levels[top] < self.levels[h] for h in heads if h != top):  # outranks all (or the only one)
            return top
        h0 = heads[0]
        nxt = h0 + 1
        return h0 if nxt < len(self.blocks) and self.item(nxt) is None else None

    def segments(self, skip: int | None) -> list[tuple[str, str, str, str]]:
        """(kind 'item'|'text', section, title, text) in document order."""
        out: list[tuple[str, str, str, str]] = []
        section, after_heading = "", False
        loose: list[Block] = []

        def flush() -> None:
            if loose:
                out.append(("text", section, "", _render(loose)))
                loose.clear()

        i, n = 0, len(self.blocks)
        while i < n:
            b = self.blocks[i]
            if i == skip:
                i += 1
                continue
            if self.levels[i] is not None or self.group(i):
                flush()
                heading = clean_title(b.text)
                section = f"{section} — {heading}" if after_heading and section else heading
                after_heading = True
                i += 1
                continue
            after_heading = False
            head = self.item(i)
            if head is None:
                loose.append(b)
                i += 1
                continue
            flush()
            j = i + 1
            while j < n and self._absorbs(i, j, has_body=bool(head.body) or j > i + 1):
                j += 1
            body = _render(self.blocks[i + 1:j])
            out.append(("item", section, head.title, "\n\n".join(p for p in (head.body, body) if p)))
            i = j
        flush()
        return out


def _render(blocks: list[Block]) -> str:
    """Blocks -> step text: paragraphs separated by a blank line; two or more list entries in a row as '- ' lines."""
    paras: list[str] = []
    run: list[str] = []

    def end_run() -> None:
        if len(run) >= 2:
            paras.append("\n".join(f"- {t}" for t in run))
        elif run:
            paras.append(run[0])
        run.clear()

    for b in blocks:
        text = "\n".join(s for s in (line.strip() for line in b.text.split("\n")) if s)
        if not text:
            continue
        if b.label:  # "Step 1: Wash your hands." was not an item: its label is its text again
            end_run()
            paras.append(b.label + text)
        elif b.kind == "item":
            run.append(text)
        else:
            end_run()
            paras.append(text)
    end_run()
    return "\n\n".join(paras)


def _fallback_title(name: str) -> str:
    words = re.sub(r"[-_.]+", " ", name).split()
    return " ".join(words)[:1].upper() + " ".join(words)[1:] if words else "Untitled"


def split_document(doc: Document, *, name: str = "", where: str | None = None, language: str = "en") -> Draft:
    """Blocks -> Draft. `name` (a file stem) is the title of last resort; errors name `where`."""
    splitter = _Splitter(doc.blocks)
    title_at = splitter.title_index()
    if title_at is not None:
        title = clean_title(doc.blocks[title_at].text)
    else:
        title = clean_title(doc.title_hint) or _fallback_title(name)
    segments = splitter.segments(title_at)
    positions = [k for k, seg in enumerate(segments) if seg[0] == "item"]
    if not positions:
        raise DocumentError(
            "no items found: expected numbered or bulleted entries with a title, e.g. '1. Release of Endorphins:'",
            where=where,
        )
    steps: list[DraftStep] = []
    for k, (kind, section, item_title, text) in enumerate(segments):
        if kind == "item":
            step_kind = "item"
        elif k < positions[0]:
            step_kind = "intro"
        elif k > positions[-1]:
            step_kind = "outro"
        else:  # between items: a lead-in to its section's items, or what follows them
            nxt = segments[k + 1]
            step_kind = "intro" if nxt[0] == "item" and nxt[1] == section else "outro"
        subject = subject_for(item_title, section, title, text, language)
        step = DraftStep(step_kind, section, item_title, subject, text)  # type: ignore[arg-type]
        steps.append(replace(step, preheader=preheader_for(step)))
    return Draft(title=title, steps=steps)


def split_file(path: Path, language: str = "en") -> Draft:
    """Read and split a document file; every problem is a DocumentError naming the file.
    `language`: the article's, for the subjects and headings drip writes itself."""
    path = Path(path)
    return split_document(read_document(path), name=path.stem, where=str(path), language=language)

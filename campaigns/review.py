"""Review warnings: what a content person should look at before a draft goes to patients.

No rule can guess what an article meant, so the splitter's doubts become warnings beside the
step they concern (the `drip split` table and `--json`, the staff campaign page), and publishing
with warnings open asks for a confirmation. Each check is cheap, local to one step and worded
for staff, not for developers.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Iterable, Protocol

MAX_SUBJECT = 60  # what a phone shows before cutting off
SHORT_BODY_WORDS = 8  # an item of two short sentences is normal; one of a few words is a scrap

# Page furniture: site chrome that was captured with the article. Phrases, not single words, so an
# article about "sharing" or "comments from patients" is not flagged.
FURNITURE = re.compile(
    r"\b(?:share (?:this|on)|click here|read more|continue reading|leave a (?:comment|reply)|"
    r"\d+ comments?|related (?:posts|articles)|previous post|next post|posted (?:in|on|by)|"
    r"subscribe to (?:our|the) newsletter|sign up for our newsletter|advertisement|sponsored content|"
    r"skip to (?:main )?content|all rights reserved|privacy policy|terms of (?:use|service)|"
    r"follow us on|cookie (?:policy|settings)|back to top|tags?:|filed under)\b",
    re.IGNORECASE,
)
SIGN_OFF = re.compile(
    r"^(?:warm(?:est)? regards|kind regards|best regards|regards|best wishes|sincerely|yours (?:truly|sincerely)|"
    r"with gratitude|in health|to your health|cheers|thanks|thank you|take care)\b[ ,.!—-]*",
    re.IGNORECASE,
)
_BARE_URL = re.compile(r"(?<!\]\()(?<![\"'=])\bhttps?://[^\s<>()\"']+", re.IGNORECASE)
_DOUBLED = re.compile(r"\b([a-z]{2,})\s+\1\b", re.IGNORECASE)
# "work may work": a word repeated around a short word, the usual trace of an edit left half done.
_ECHO = re.compile(r"\b([a-z]{3,})\s+([a-z]{2,5})\s+\1\b", re.IGNORECASE)
# Idioms where that shape is right: "day by day", "side to side", "more and more", "one on one".
_ECHO_OK = {"by", "to", "and", "after", "for", "on", "upon", "in", "or", "over", "from", "versus", "vs", "against"}
_DOUBLED_OK = {"had", "that", "is", "very", "bye", "no", "so", "ha", "tom", "knock"}


class StepLike(Protocol):
    kind: str
    title: str
    subject: str
    text: str


@dataclass(frozen=True)
class ReviewWarning:
    step: int  # 1-based position of the step in the draft
    kind: str  # fragment | short | subject | sign-off | typo | furniture | bare-url
    message: str

    def to_json(self) -> dict:
        return asdict(self)


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def _is_fragment(para: str) -> bool:
    """A scrap such as a stray "nervous system" line: a few words, no sentence, no list, no label."""
    words = para.split()
    if not 1 <= len(words) <= 4 or "\n" in para:
        return False
    if para[-1:] in ".!?:;)\"”’" or para[:1] in "-*•#>|" or re.match(r"^\d+[.)]", para):
        return False
    return True


def _step_warnings(position: int, step: StepLike, sign_offs: dict[str, list[int]]) -> list[ReviewWarning]:
    out: list[ReviewWarning] = []
    text = step.text or ""
    paras = _paragraphs(text)
    after_sign_off = False
    for para in paras:
        signs_off = bool(SIGN_OFF.match(para))
        # A sign-off and the name under it are short by nature; furniture has its own warning.
        if _is_fragment(para) and not (signs_off or after_sign_off or FURNITURE.search(para)):
            out.append(ReviewWarning(position, "fragment", f"a fragment kept from the source: “{para}”"))
        after_sign_off = signs_off
    words = len(text.split())
    if words < SHORT_BODY_WORDS:
        out.append(ReviewWarning(position, "short", f"a very short body ({words} words)"))
    if len(step.subject or "") > MAX_SUBJECT:
        out.append(ReviewWarning(position, "subject",
                                 f"the subject has {len(step.subject)} characters; phones show about {MAX_SUBJECT}"))
    for m in _DOUBLED.finditer(text):
        if m.group(1).lower() not in _DOUBLED_OK:
            out.append(ReviewWarning(position, "typo", f"a doubled word: “{m.group(0)}”"))
    for m in _ECHO.finditer(text):
        if m.group(2).lower() not in _ECHO_OK and m.group(1).lower() != m.group(2).lower():
            out.append(ReviewWarning(position, "typo", f"a likely typo: “{m.group(0)}”"))
    for source in (step.title or "", step.subject or "", *paras):
        m = FURNITURE.search(source)
        if m:
            out.append(ReviewWarning(position, "furniture", f"looks like page furniture: “{m.group(0)}”"))
    for m in _BARE_URL.finditer(text):
        out.append(ReviewWarning(position, "bare-url", f"a bare URL: {m.group(0)[:80]}"))
    for para in paras:
        m = SIGN_OFF.match(para)
        if m and len(para.split()) <= 8:
            sign_offs.setdefault(m.group(0).strip(" ,.!—-").lower(), []).append(position)
    return out


def review(steps: Iterable[StepLike]) -> list[ReviewWarning]:
    """Every warning of a draft or a stored campaign, in step order (at most one per kind and text)."""
    out: list[ReviewWarning] = []
    sign_offs: dict[str, list[int]] = {}
    for position, step in enumerate(steps, 1):
        out += _step_warnings(position, step, sign_offs)
    for phrase, positions in sign_offs.items():
        if len(positions) > 1:
            for position in positions:
                out.append(ReviewWarning(position, "sign-off",
                                         f"the sign-off “{phrase}” is repeated in {len(positions)} emails"))
    seen: set[tuple[int, str, str]] = set()
    unique = []
    for w in sorted(out, key=lambda w: w.step):
        key = (w.step, w.kind, w.message)
        if key not in seen:
            seen.add(key)
            unique.append(w)
    return unique


def by_step(warnings: Iterable[ReviewWarning]) -> dict[int, list[ReviewWarning]]:
    out: dict[int, list[ReviewWarning]] = {}
    for w in warnings:
        out.setdefault(w.step, []).append(w)
    return out

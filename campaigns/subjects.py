"""Subject lines and preheaders: general education about a topic, never about the reader.

A subject is read on a lock screen by whoever holds the phone, so it names a topic ("How
acupuncture works: release of endorphins"), never a person's health ("Your back pain").
Everything here is derived from the document's own wording; nothing is invented about the
recipient, and nothing reaches a header with a CR/LF in it.
"""

from __future__ import annotations

import re
from typing import Protocol

MAX_SUBJECT = 60  # what a phone's inbox shows before cutting off
MAX_PREHEADER = 110

CONDITION_WORDS = (
    "pain", "pains", "ache", "aches", "condition", "conditions", "diagnosis", "symptom", "symptoms",
    "illness", "disease", "disorder", "injury", "injuries", "spasm", "spasms", "cramp", "cramps",
    "migraine", "migraines", "headache", "headaches", "arthritis", "anxiety", "depression", "insomnia",
    "infection", "inflammation", "cancer", "diabetes", "fibromyalgia", "sciatica", "neuropathy",
    "neuralgia", "infertility", "pregnancy", "problem", "problems", "back", "neck", "knee", "knees",
    "joints", "stress", "fatigue", "treatment", "treatments", "medication", "medications", "results",
    "health", "weight", "allergies", "asthma", "tension", "recovery",
)
_CONDITION = "|".join(CONDITION_WORDS)
# second person + a health word within two words, or "you have/suffer from ..."
ABOUT_READER = re.compile(
    rf"\byours?\b(?:\W+\w+){{0,2}}?\W+(?:{_CONDITION})\b"
    r"|\byou(?:\s+(?:may|might|could|probably|still))?\s+"
    r"(?:have|had|suffer|are\s+suffering|are\s+living\s+with|live\s+with)\b"
    r"|\byou(?:'|’)(?:re|ve)\s+(?:suffering|living\s+with|been\s+diagnosed|got)\b",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TOPIC_SPLIT = re.compile(
    r"\s*[:|–—]\s*|\s+-\s+|\s+(?:for|and|in|with|to|of|on|as|vs\.?|versus|&|after|during)\s+", re.IGNORECASE
)
_NOT_A_TOPIC = {"the", "a", "an", "how", "why", "what", "when", "where", "your", "our", "my", "top", "best", "new",
                # title-opening verbs ("Understanding Acupuncture"); "Cupping" or "Needling" are topics
                "understanding", "managing", "treating", "living", "coping", "getting", "finding", "improving",
                "choosing", "preparing", "using", "exploring", "reducing", "relieving", "easing", "beating"}


# A "topic" that is really a kind of post ("5 Tips", "News", "FAQ") makes "Tips and hydration:
# what to know": phrases no one would write. Such titles give no topic.
_GENERIC_TOPICS = {"tip", "tips", "way", "ways", "reason", "reasons", "step", "steps", "benefit", "benefits", "fact",
                   "facts", "thing", "things", "idea", "ideas", "guide", "faq", "faqs", "question", "questions", "news",
                   "update", "updates", "newsletter", "blog", "article", "post", "welcome", "hello", "introduction",
                   "overview", "summary", "notes", "week", "month", "today", "stay", "keep", "stop", "start", "try"}
# Cut points for a long heading: "Scientific Evidence Supporting Acupuncture | for Pain Relief ...".
_CLAUSE = re.compile(r"\s+(?:for|and|in|with|to|of|on|as|after|during|through|by)\s+|\s*[:|–—]\s*|\s+-\s+", re.I)


class _StepLike(Protocol):
    title: str
    section: str
    text: str


def one_line(text: str) -> str:
    """Collapse all whitespace (CR, LF, tabs, Unicode line separators) and drop control characters."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _lower_word(word: str) -> str:
    """'Chronic' -> 'chronic', but 'TMJ', "Bell's" and 'iPhone' keep their case."""
    parts = word.split("-")
    return "-".join(p.lower() if p[:1].isupper() and p[1:].islower() and not ("'" in p or "’" in p) else p
                    for p in parts)


def _lower(text: str) -> str:
    return " ".join(_lower_word(w) for w in text.split())


def _sentence(text: str) -> str:
    words = text.split()
    if not words:
        return ""
    rest = _lower(" ".join(words[1:]))
    return f"{words[0][:1].upper()}{words[0][1:]}{' ' + rest if rest else ''}"


def topic_of(doc_title: str) -> str:
    """The main subject of a title: 'Acupuncture for Pain Relief' -> 'Acupuncture' ('' if unclear)."""
    head = _TOPIC_SPLIT.split(one_line(doc_title), maxsplit=1)[0].strip()
    words = head.split()
    if not 1 <= len(words) <= 3 or words[0].lower() in _NOT_A_TOPIC or words[0][:1].isdigit():
        return ""
    if any(w.lower().strip(".,!?") in _GENERIC_TOPICS for w in words):
        return ""
    return head


def about_reader(text: str) -> bool:
    """True for second-person health wording ('your pain', 'you have ...')."""
    return bool(ABOUT_READER.search(text))


def _impersonal(text: str) -> str:
    """Remove reader-directed wording from a title: 'Managing Your Back Pain' -> 'Managing Back Pain'."""
    text = re.sub(r"\b(?:if|when|whether)\s+you\s+(?:have|suffer\s+from|are\s+suffering\s+from|live\s+with)\b",
                  "for", text, flags=re.IGNORECASE)
    text = re.sub(r"\byou(?:'|’)(?:re|ve)\b|\byou\s+(?:may|might|could)\s+have\b"
                  r"|\byou\s+(?:have|had|suffer(?:\s+from)?)\b", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"\byours?\b", " ", text, flags=re.IGNORECASE)
    return one_line(text)


def _fit(text: str, limit: int) -> str:
    """At most `limit` characters: whole clauses where a cut at "for/and/..." leaves a phrase, else words + "…"."""
    text = one_line(text)
    if len(text) <= limit:
        return text
    cuts = [m.start() for m in _CLAUSE.finditer(text) if 3 * limit // 5 <= m.start() <= limit]
    if cuts:
        return text[: cuts[-1]].rstrip(" ,;:-–—")
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:-–—") + "…"


def is_furniture(text: str) -> bool:
    """Site chrome ("Share this", "Leave a comment") is never a subject or a heading."""
    from campaigns.review import FURNITURE

    return bool(FURNITURE.search(text)) or one_line(text).lower().rstrip(":!. ") in {"share", "comments", "menu", "tags"}


#: The subject and heading patterns in each article language (the article is in it, so they are too).
_PATTERNS = {
    "en": {"how": "How {topic} works: {base}", "and": "{Topic} and {base}: what to know",
           "know": "{Base}: what to know", "news": "News from the clinic",
           "intro_topic": "An introduction to {topic}", "intro": "An introduction",
           "outro_topic": "{Topic}: putting it together", "outro": "Putting it together"},
    "es": {"how": "Cómo funciona {topic}: {base}", "and": "{Topic} y {base}: lo que debe saber",
           "know": "{Base}: lo que debe saber", "news": "Noticias de la clínica",
           "intro_topic": "Introducción: {topic}", "intro": "Introducción",
           "outro_topic": "{Topic}: en resumen", "outro": "En resumen"},
}


def _pattern(language: str, name: str, topic: str = "", base: str = "") -> str:
    pattern = (_PATTERNS.get(language) or _PATTERNS["en"])[name]
    return pattern.format(topic=_lower(topic), Topic=_sentence(topic), base=_lower(base), Base=_sentence(base))


def subject_for(title: str, section: str, doc_title: str, text: str | None = None, language: str = "en") -> str:
    """Subject from a step's title (or, for intro/outro steps, the heading it sits under or the document title).

    The article's topic leads ("Acupuncture and chronic pain: what to know") only when it is a
    real topic and, given the step's `text`, that text speaks of it; otherwise the title stands
    alone, so no section word is glued to an item.
    """
    base = _impersonal(title).rstrip(" :-–—")
    topic = _impersonal(topic_of(doc_title))
    if topic and text is not None and topic.lower() not in f"{one_line(section)} {one_line(text)}".lower():
        topic = ""
    if base:
        mentions_topic = bool(topic) and topic.lower() in base.lower()
        how = re.search(r"^how\b.*\bworks?\b", one_line(section), re.IGNORECASE) is not None
        candidates = []
        if topic and not mentions_topic and how:
            candidates.append(_pattern(language, "how", topic, base))
        if topic and not mentions_topic:
            candidates.append(_pattern(language, "and", topic, base))
        if len(base.split()) <= 6 and not base.endswith("?"):
            candidates.append(_pattern(language, "know", base=base))
        candidates.append(base)
    else:
        candidates = [_fit(_impersonal(section).rstrip(" :-–—"), MAX_SUBJECT), _impersonal(doc_title)]
    candidates = [c for c in (one_line(c) for c in candidates) if c and not about_reader(c) and not is_furniture(c)]
    if not candidates:
        return _fit(topic and _pattern(language, "know", base=topic) or _pattern(language, "news"), MAX_SUBJECT)
    return next((c for c in candidates if len(c) <= MAX_SUBJECT), _fit(candidates[-1], MAX_SUBJECT))


def heading_for(kind: str, section: str, doc_title: str, language: str = "en") -> str:
    """The heading of an untitled intro or outro email: its own section, not the campaign's title."""
    own = _impersonal(section).rstrip(" :-–—")
    if own and not is_furniture(own) and not about_reader(own):
        return own
    topic = topic_of(doc_title)
    if kind == "intro":
        return _pattern(language, "intro_topic", topic) if topic else _pattern(language, "intro")
    return _pattern(language, "outro_topic", topic) if topic else _pattern(language, "outro")


def preheader_for(step: _StepLike) -> str:
    """The inbox preview line: the first whole sentence of the step that does not address the reader's health."""
    sentences: list[str] = []
    for para in step.text.split("\n\n"):
        flat = one_line(re.sub(r"(?m)^\s*[-•]\s+", "", para))
        sentences += [s for s in re.split(r"(?<=[.!?])\s+", flat) if s]
    complete = [s for s in sentences if s[-1:] in ".!?" and len(s.split()) >= 4]
    for sentence in complete + sentences:
        if not about_reader(sentence):
            return _fit(sentence, MAX_PREHEADER)
    fallback = _impersonal(step.title or step.section)
    return _fit(fallback, MAX_PREHEADER) if not about_reader(fallback) else ""


_APPOINTMENT = re.compile(r"\b(?:appointment|appt|visit|session)s?\s+(?:on|at|for)\b|\bdiagnos(?:is|ed|es)\b", re.IGNORECASE)


def check_subject(text: str, field: str = "subject") -> str:
    """Refuse subject/preheader wording about the reader's own health or care.

    Subjects are seen by anyone glancing at an inbox or a lock screen: patient email carries
    general education only ('How acupuncture eases muscle spasms', not 'Your back pain' or
    'Your appointment on Friday').
    """
    from drip.errors import InputError

    if about_reader(text):
        raise InputError("keep it general: no wording about the reader's own condition (e.g. 'your back pain')",
                         where=field)
    if _APPOINTMENT.search(text):
        raise InputError("no appointment or diagnosis details in a subject or preheader", where=field)
    return text

"""Wording that addresses the reader's own health, found before a newsletter goes to everyone.

A newsletter goes to a whole list, through a provider, and may be forwarded or read over a
shoulder: "your diagnosis", "your treatment on Tuesday" or "since you were diagnosed with ..."
says something about the reader that the clinic should not broadcast. Educational wording ("a
diagnosis of sciatica usually ...") is fine. This only warns; staff decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEALTH_NOUNS = (
    r"diagnos[ie]s|condition|treatments?|therapy|medications?|medicines?|prescriptions?|dosage|dose|"
    r"symptoms?|test results?|lab results?|results|scan|x-ray|mri|biopsy|surgery|operation|procedure|"
    r"injury|illness|disease|disorder|pregnancy|recovery|rehab(?:ilitation)?|care plan|treatment plan|"
    r"referral|prognosis|pain|chart|medical record|health record|visit|appointment|session"
)
_PATTERNS = (
    # "your diagnosis", "your recent MRI", "your back pain"
    re.compile(rf"\byour\s+(?:(?:recent|latest|last|next|current|upcoming|ongoing|chronic|own|new)\s+)?"
               rf"(?:[a-z-]+\s+)?(?:{_HEALTH_NOUNS})\b", re.I),
    # "you were diagnosed with", "you have been treated for", "you suffer from"
    re.compile(r"\byou(?:'ve| have| were| are|'re)?\s+(?:been\s+)?(?:diagnosed|treated|prescribed|referred)\b", re.I),
    re.compile(r"\byou\s+(?:suffer|suffered|are suffering)\s+from\b", re.I),
)
# Words between "your" and the noun that make it general, not personal ("your overall health" is fine).
_GENERAL = re.compile(r"\byour\s+(?:overall|general|daily|everyday)\b", re.I)


@dataclass(frozen=True)
class HealthWording:
    line: int
    phrase: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.phrase!r} addresses the reader's own health"


def personal_health_wording(text: str, limit: int = 10) -> list[HealthWording]:
    """Phrases in `text` that speak of the reader's own health, at most `limit`, by line."""
    found: list[HealthWording] = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern in _PATTERNS:
            for m in pattern.finditer(line):
                if _GENERAL.match(m.group(0)):
                    continue
                found.append(HealthWording(number, " ".join(m.group(0).split())))
                if len(found) >= limit:
                    return found
    return found

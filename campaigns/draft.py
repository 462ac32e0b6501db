"""What the splitter produces: a document title and its steps, before anything is stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

StepKind = Literal["intro", "item", "outro"]


@dataclass(frozen=True)
class DraftStep:
    kind: StepKind
    section: str  # heading the step sits under ("" for none)
    title: str  # original wording, trailing ":" / " -" removed
    subject: str  # derived from the title; general education wording, never about the reader
    text: str  # this step's own body only (paragraphs separated by a blank line)
    preheader: str = ""


@dataclass(frozen=True)
class Draft:
    title: str
    steps: list[DraftStep] = field(default_factory=list)

    @property
    def items(self) -> list[DraftStep]:
        return [s for s in self.steps if s.kind == "item"]

    def to_json(self) -> dict:
        """The `drip split --json` contract (DESIGN.md), with the review warnings (campaigns/review.py)."""
        from campaigns.review import review

        return {
            "title": self.title,
            "steps": [
                {k: v for k, v in asdict(s).items() if k in ("kind", "section", "title", "subject", "text", "preheader")}
                for s in self.steps
            ],
            "warnings": [w.to_json() for w in review(self.steps)],
        }

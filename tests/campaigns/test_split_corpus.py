"""The corpus: 30+ articles shaped like what clinics really publish, each scored against tests/fixtures/articles/expected.json.

Per document: the expected item titles (found / missing / spurious), the title, furniture
strings that must appear nowhere in the draft (bylines, share bars, MIME headers, front
matter...), strings that must not be inside an item step (sign-offs, references, key
takeaways) and strings that must be kept somewhere (table rows, FAQ questions, sources).
Any miss fails. `python -m tests.campaigns.test_split_corpus` prints the score table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from campaigns.documents import DocumentError
from campaigns.split import split_file

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "articles"
EXPECTED: dict[str, dict] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


@dataclass
class Score:
    name: str
    expected: int = 0
    found: int = 0
    spurious: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)
    swallowed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    title: str = ""
    error: str = ""

    @property
    def misses(self) -> int:
        return len(self.spurious) + len(self.missing) + len(self.leaked) + len(self.swallowed) + len(self.lost) \
            + bool(self.title) + bool(self.error)


def score(name: str) -> Score:
    want = EXPECTED[name]
    s = Score(name, expected=len(want["items"]))
    try:
        draft = split_file(CORPUS / name)
    except DocumentError as exc:
        s.error, s.missing = str(exc), list(want["items"])
        return s
    titles = [step.title for step in draft.items]
    s.found = sum(1 for t in want["items"] if t in titles)
    s.missing = [t for t in want["items"] if t not in titles]
    s.spurious = [t for t in titles if t not in want["items"]]
    everything = "\n".join([draft.title, *(f"{st.section}\n{st.title}\n{st.subject}\n{st.preheader}\n{st.text}"
                                           for st in draft.steps)])
    in_items = "\n".join(f"{st.title}\n{st.text}" for st in draft.items)
    s.leaked = [f for f in want.get("furniture", []) if f in everything]
    s.swallowed = [f for f in want.get("not_in_items", []) if f in in_items]
    s.lost = [f for f in want.get("present", []) if f not in everything]
    if draft.title != want["title"]:
        s.title = draft.title
    return s


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_document_scores_full_marks(name):
    s = score(name)
    assert not s.error, s.error
    assert s.missing == [] and s.spurious == [], (s.missing, s.spurious)
    assert s.leaked == [], f"furniture leaked into the draft: {s.leaked}"
    assert s.swallowed == [], f"inside an item step: {s.swallowed}"
    assert s.lost == [], f"missing from the draft: {s.lost}"
    assert not s.title, f"title {s.title!r}, expected {EXPECTED[name]['title']!r}"


def test_corpus_is_big_and_covers_every_format():
    assert len(EXPECTED) >= 30
    assert {Path(n).suffix for n in EXPECTED} == {".html", ".md", ".txt", ".docx"}
    on_disk = {p.name for p in CORPUS.iterdir() if p.suffix in (".html", ".md", ".txt", ".docx")}
    assert on_disk == set(EXPECTED)


def main() -> None:
    scores = [score(n) for n in sorted(EXPECTED)]
    for s in scores:
        flag = "ok " if not s.misses else "MISS"
        print(f"{flag} {s.name:28} items {s.found}/{s.expected} spurious {s.spurious or '-'} missing {s.missing or '-'} "
              f"leaked {s.leaked or '-'} swallowed {s.swallowed or '-'} lost {s.lost or '-'} "
              f"{'title ' + repr(s.title) if s.title else ''} {s.error}")
    exp = sum(s.expected for s in scores)
    found = sum(s.found for s in scores)
    print(f"\n{found}/{exp} expected items found ({100 * found / exp:.0f}%), "
          f"{sum(len(s.spurious) for s in scores)} spurious, {sum(len(s.leaked) for s in scores)} furniture leaked, "
          f"{sum(len(s.swallowed) for s in scores)} swallowed, {sum(len(s.lost) for s in scores)} lost, "
          f"{sum(1 for s in scores if s.title)} wrong titles, {sum(1 for s in scores if s.error)} errors; "
          f"{sum(1 for s in scores if not s.misses)}/{len(scores)} documents perfect")


if __name__ == "__main__":
    main()

"""`drip bench split`: articles split per second over the test corpus, and a 200-page .docx.

Two figures, each with a baseline from the same run:
- corpus: every article in tests/fixtures/articles read and split, in articles/s; baseline is
  the format libraries' own parse of the same bytes (lexbor for HTML, markdown-it for
  Markdown, python-docx's open for Word, a line split for text), i.e. what drip adds on top.
- a generated 200-page Word file (headings, bold-titled list entries, body paragraphs with
  several runs, a table): drip's read + split against python-docx's own plain read of it
  (open + every paragraph's `.text`). Goal: drip within 3x of that (the ratio printed is
  python-docx's time / drip's time, so >= 0.33 meets it).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from bench import BenchResult

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "articles"


def big_docx(pages: int = 200) -> bytes:
    """A long Word article: per page a heading, four bold-titled list entries with bodies, two paragraphs."""
    import docx

    d = docx.Document()
    d.add_paragraph("Acupuncture Handbook", style="Title")
    body = ("Acupuncture is used alongside usual care. Many patients notice calmer sleep and less pain "
            "after a few sessions, and the practitioner adjusts the plan as you go. ")
    for page in range(pages):
        d.add_heading(f"Chapter {page + 1}: Care at Home", level=1)
        for k in range(4):
            p = d.add_paragraph(style="List Number")
            p.add_run(f"Point {page}-{k} Title:").bold = True
            p.add_run(" " + body)
            p.add_run("More words in an italic run. ").italic = True
            p.add_run("And a last plain run to end the entry.")
        for _ in range(2):
            p = d.add_paragraph()
            p.add_run(body)
            p.add_run(body).italic = True
        if page % 20 == 0:
            t = d.add_table(rows=3, cols=2)
            for r, (a, b) in enumerate([("Day", "Hours"), ("Mon", "9-5"), ("Tue", "9-1")]):
                t.cell(r, 0).text, t.cell(r, 1).text = a, b
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(quick: bool = False) -> BenchResult:
    import docx

    from campaigns.documents import DocumentError, decode_text, parse_bytes
    from campaigns.split import split_document

    files = sorted(p for p in CORPUS.iterdir() if p.suffix in (".txt", ".md", ".html", ".docx")) if CORPUS.is_dir() else []
    blobs = [(p, p.read_bytes()) for p in files]

    def split_all() -> None:
        for p, data in blobs:
            try:
                split_document(parse_bytes(data, p.suffix, p.name), name=p.stem)
            except DocumentError:
                pass

    from markdown_it import MarkdownIt
    from selectolax.lexbor import LexborHTMLParser

    md = MarkdownIt("commonmark").enable("table")

    def parse_only() -> None:
        for p, data in blobs:
            if p.suffix == ".docx":
                docx.Document(io.BytesIO(data))
                continue
            text = decode_text(data, p.name)
            if p.suffix == ".html":
                LexborHTMLParser(text)
            elif p.suffix == ".md":
                md.parse(text)
            else:
                text.split("\n")

    rounds = 2 if quick else 5
    t_split = _best(split_all, rounds)
    t_decode = _best(parse_only, rounds)
    rate = len(blobs) / t_split if blobs and t_split else 0.0
    base = len(blobs) / t_decode if blobs and t_decode else 0.0

    pages = 20 if quick else 200
    data = big_docx(pages)

    def drip_read() -> None:
        split_document(parse_bytes(data, ".docx", "big.docx"), name="big")

    def docx_read() -> None:
        d = docx.Document(io.BytesIO(data))
        "\n".join(p.text for p in d.paragraphs)

    rep = 1 if quick else 3
    t_drip = _best(drip_read, rep)
    t_docx = _best(docx_read, rep)
    return BenchResult(
        bench="split", unit="articles/s", rate=rate, baseline=base,
        label=f"read+split of {len(blobs)} corpus articles", baseline_label="format libraries' parse only",
        details={
            "docx_pages": pages,
            "docx_bytes": len(data),
            "docx_drip_s": round(t_drip, 3),
            "docx_python_docx_plain_read_s": round(t_docx, 3),
            "docx_drip_vs_plain_read": round(t_drip / t_docx, 2) if t_docx else None,
            "docx_goal": "drip within 3x of python-docx's plain read",
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        },
    )

"""`drip bench split --quick` runs over the corpus and the generated .docx and reports both figures (no timing asserted)."""

from __future__ import annotations

import json

from bench import BENCHES


def test_split_bench_reports_corpus_rate_and_docx_comparison():
    from bench.split import CORPUS, run

    assert BENCHES["split"] == "bench.split"
    result = run(quick=True)
    data = json.loads(result.json_line())
    assert data["bench"] == "split" and data["unit"] == "articles/s" and data["rate"] > 0 and data["baseline"] > 0
    assert data["docx_pages"] == 20 and data["docx_drip_s"] > 0 and data["docx_python_docx_plain_read_s"] > 0
    assert "loadavg" in data
    n = sum(1 for p in CORPUS.iterdir() if p.suffix in (".txt", ".md", ".html", ".docx"))
    assert n >= 30 and f"{n} corpus articles" in result.label


def test_generated_docx_splits_into_an_item_per_entry():
    import io

    from bench.split import big_docx
    from campaigns.readers.word import parse_docx
    from campaigns.split import split_document

    draft = split_document(parse_docx(io.BytesIO(big_docx(3))), name="big")
    assert len(draft.items) == 12 and draft.items[0].title == "Point 0-0 Title"

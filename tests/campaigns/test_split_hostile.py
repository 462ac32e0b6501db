"""Hostile documents end in one line naming the problem (exit 2), never a traceback or a huge read."""

from __future__ import annotations

import tracemalloc

import pytest

from campaigns.documents import DocumentError, parse_bytes
from tests.campaigns.hostile_docs import declared_bomb, deep_html
from tests.campaigns.test_split_cli import run_main


@pytest.mark.parametrize("suffix", [".html", ".md"])
def test_html_nested_ten_thousand_deep_is_a_document_error(suffix):
    with pytest.raises(DocumentError, match="nested more than 250 elements deep") as err:
        parse_bytes(deep_html(10_000), suffix, "deep" + suffix)
    assert err.value.where == "deep" + suffix


def test_reasonably_deep_page_builder_html_still_reads():
    data = deep_html(120)
    assert [b.text for b in parse_bytes(data, ".html", "ok.html").blocks] == ["Sleep: rest well."]


def test_zip_bomb_is_refused_from_its_directory_without_inflating():
    tracemalloc.start()
    try:
        with pytest.raises(DocumentError, match=r"inflates to 1024 MB .*at most 200 MB"):
            parse_bytes(declared_bomb(), ".docx", "bomb.docx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024


@pytest.mark.parametrize("name, data, message", [
    ("deep.html", deep_html(10_000), "HTML nested more than 250 elements deep"),
    ("bomb.docx", declared_bomb(), "not a plausible Word .docx file"),
])
def test_cli_gives_one_line_and_exit_2(tmp_path, capsys, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    code, out, err = run_main(["split", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"drip: error: {path}: {message}") and err.count("\n") == 1
    assert "Traceback" not in err

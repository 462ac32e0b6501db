"""`drip preview`: files per step, an index, and nothing written for bad input."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, strategies as st
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from campaigns.preview import MARKER, render_preview, sample_recipient, slugify, write_preview
from campaigns.render import Renderer
from drip.cli import main
from drip.config import Clinic
from tests.campaigns.render_samples import draft


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    """The CLI reads settings from the environment / ./drip.toml: keep both out of the tests."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DRIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRIP_CONFIG", str(tmp_path / "absent.toml"))


def run_cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_render_preview_renders_each_step_for_the_sample_name():
    emails = render_preview(draft(), Renderer(Clinic()), sample_recipient("Ana Souza", "https://clinic.test"))
    assert [e.html_name for e in emails] == [
        "01-acupuncture-for-pain-relief.html", "02-release-of-endorphins.html",
        "03-improved-blood-circulation.html", "04-integrating-acupuncture.html",
    ]
    assert emails[1].text_name == "02-release-of-endorphins.txt"
    assert all("Hi Ana," in e.text and "Hi Ana," in e.html for e in emails)
    assert "Step 2 of 4" in emails[1].text
    assert "https://clinic.test/u/preview-sample" in emails[0].text


def test_cli_writes_files_and_index(seed_path, tmp_path, capsys):
    pytest.importorskip("campaigns.split")
    out = tmp_path / "preview"
    assert run_cli("preview", str(seed_path), "--out", str(out), "--name", "Ana <Souza>") == 0
    printed = capsys.readouterr().out
    assert "Wrote 13 emails" in printed and (out / "index.html").resolve().as_uri() in printed

    html_files = sorted(p.name for p in out.glob("*.html") if p.name != "index.html")
    txt_files = sorted(p.name for p in out.glob("*.txt"))
    assert len(html_files) == len(txt_files) == 13
    assert all(re.fullmatch(r"\d\d-[a-z0-9-]+\.html", n) for n in html_files)
    assert "02-release-of-endorphins.html" in html_files
    assert "Hi Ana," in (out / "02-release-of-endorphins.txt").read_text()

    index = HTMLParser((out / "index.html").read_text())
    links = {a.attributes["href"] for a in index.css("a")}
    assert set(html_files) <= links and set(txt_files) <= links
    subjects = [n.text() for n in index.css("ol.inbox .subject")]
    assert "How acupuncture works: release of endorphins" in subjects and len(subjects) == 13
    assert "Ana &lt;Souza&gt;" in (out / "index.html").read_text()  # the sample name is escaped


def test_cli_replaces_an_earlier_preview(seed_path, tmp_path):
    pytest.importorskip("campaigns.split")
    out = tmp_path / "preview"
    assert run_cli("preview", str(seed_path), "--out", str(out)) == 0
    (out / "99-stale.html").write_text("old")
    assert run_cli("preview", str(seed_path), "--out", str(out)) == 0
    assert not (out / "99-stale.html").exists() and (out / MARKER).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folders left


@pytest.mark.parametrize("content", [None, "just one line, no items\n", b"\x00\x01\x02binary\xff"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, content):
    pytest.importorskip("campaigns.split")
    source = tmp_path / "article.txt"
    if isinstance(content, bytes):
        source.write_bytes(content)
    elif content is not None:
        source.write_text(content)
    out = tmp_path / "preview"
    assert run_cli("preview", str(source), "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("drip: error: ") and "\n" not in err and "article.txt" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["article.txt"] if content is not None else [])


def test_refuses_to_replace_a_folder_it_did_not_make(seed_path, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert run_cli("preview", str(seed_path), "--out", str(out)) == 2
    assert "not a drip preview folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_failed_write_leaves_the_old_preview_and_no_temp_folder(tmp_path):
    out = tmp_path / "preview"
    write_preview({"01-a.html": "first"}, out)
    with pytest.raises(OSError):
        write_preview({"01-a.html": "second", "sub/02-b.html": "no such folder"}, out)
    assert (out / "01-a.html").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview"]


@given(st.text())
def test_slugs_are_safe_file_names(title):
    slug = slugify(title)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug) or slug == "email"
    assert len(slug) <= 48

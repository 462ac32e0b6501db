"""Files that are not readable documents: one DocumentError naming the file, never a traceback or a guess."""

from __future__ import annotations

import codecs

import pytest

from campaigns import documents
from campaigns.documents import DocumentError, read_document
from campaigns.split import split_file
from drip.errors import InputError

GOOD = "Guide\n\nIntro \u2019quoted\u2019.\n\n1. Sleep: rest well.\n2. Stress: breathe.\n"


def expect_error(path, match: str) -> DocumentError:
    with pytest.raises(DocumentError, match=match) as err:
        split_file(path)
    assert isinstance(err.value, InputError)
    assert err.value.where == str(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    return err.value


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.txt", "no such file")


def test_directory(tmp_path):
    (tmp_path / "folder.md").mkdir()
    expect_error(tmp_path / "folder.md", "is a directory")


@pytest.mark.parametrize("name", ["article.pdf", "article.doc", "article", "notes.rtf"])
def test_unknown_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text(GOOD)
    expect_error(path, r"unsupported file type .*use one of .txt")


def test_extension_is_case_insensitive(tmp_path):
    path = tmp_path / "ARTICLE.TXT"
    path.write_text(GOOD)
    assert [s.title for s in split_file(path).items] == ["Sleep", "Stress"]


@pytest.mark.parametrize("data", [b"", b"  \n\r\n\t "])
def test_empty_file(tmp_path, data):
    path = tmp_path / "empty.txt"
    path.write_bytes(data)
    expect_error(path, "empty file")


def test_binary_file_with_nul_bytes(tmp_path):
    path = tmp_path / "image.txt"
    path.write_bytes(b"line one\nline two\n\x89PNG\x00\x00\x00\rIHDR")
    expect_error(path, r"binary file.*NUL byte at line 3")


def test_binary_file_with_control_characters(tmp_path):
    path = tmp_path / "data.md"
    path.write_bytes(b"# Title\n\x1b[31mred\x07\n")
    expect_error(path, r"binary file.*0x1b at line 2")


def test_legacy_encoding_is_refused_not_guessed(tmp_path):
    path = tmp_path / "cp1252.txt"
    path.write_bytes(GOOD.encode("cp1252"))
    expect_error(path, r"not UTF-8 text \(byte 0x92 at line 3\); save the file as UTF-8")


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s.encode("utf-8"),
        lambda s: codecs.BOM_UTF8 + s.encode("utf-8"),
        lambda s: s.encode("utf-16"),  # with BOM, machine order
        lambda s: codecs.BOM_UTF16_BE + s.encode("utf-16-be"),
        lambda s: codecs.BOM_UTF16_LE + s.replace("\n", "\r\n").encode("utf-16-le"),
        lambda s: s.encode("utf-32"),
    ],
    ids=["utf8", "utf8-bom", "utf16", "utf16-be", "utf16-le-crlf", "utf32"],
)
def test_unicode_encodings_with_a_bom_are_read(tmp_path, encode):
    path = tmp_path / "doc.txt"
    path.write_bytes(encode(GOOD))
    draft = split_file(path)
    assert draft.title == "Guide"
    assert draft.steps[0].text == "Intro \u2019quoted\u2019."
    assert [s.title for s in draft.items] == ["Sleep", "Stress"]


def test_utf16_without_bom_is_binary_not_guessed(tmp_path):
    path = tmp_path / "doc.txt"
    path.write_bytes(GOOD.encode("utf-16-le"))
    expect_error(path, "binary file")


def test_document_without_items(tmp_path):
    path = tmp_path / "essay.txt"
    path.write_text("An Essay\n\nJust paragraphs here.\n\nAnd another one.\n")
    expect_error(path, r"no items found: expected numbered or bulleted entries with a title")


def test_too_large_file(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "MAX_BYTES", 10)
    path = tmp_path / "big.txt"
    path.write_text(GOOD)
    expect_error(path, r"file too large \(\d+ bytes; at most 10\)")


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.txt"
    path.write_text(GOOD)

    def refuse(self):  # tests may run as root, who can read a chmod 0 file
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(path), "read_bytes", refuse)
    expect_error(path, "permission denied")


def test_read_document_reports_the_same_errors(tmp_path):
    with pytest.raises(DocumentError, match="no such file"):
        read_document(tmp_path / "missing.md")

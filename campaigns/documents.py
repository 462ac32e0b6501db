"""Read a document file (.txt, .md, .html/.htm, .docx) into neutral blocks, or fail with one clear line.

Text files must be UTF-8 (a UTF-8 BOM is fine) or UTF-16/32 with a BOM. There is deliberately
no guessing of legacy encodings (cp1252, Latin-1): a wrong guess silently puts garbled words
into patient emails, while the error names the byte and line so staff can re-save as UTF-8.
The one exception is HTML that declares its own charset in a <meta> tag, as browsers honour it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from pathlib import Path

from campaigns.blocks import Block, Document
from drip.errors import DocumentError

__all__ = ["Block", "Document", "DocumentError", "SUPPORTED", "decode_text", "parse_bytes", "read_document"]

SUPPORTED = (".txt", ".text", ".md", ".markdown", ".html", ".htm", ".docx")
MAX_BYTES = 20 * 1024 * 1024  # an article, not an archive
MAX_UNPACKED = 200 * 1024 * 1024  # a .docx's members, inflated: a 200-page article is ~10 MB of XML

_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # tab, LF, VT, FF, CR are text
_NEWLINES = re.compile("\r\n|[\r\u2028\u2029]")
_INVISIBLE = re.compile("[\ufeff\u200b\u00ad]")  # BOM/zero-width space/soft hyphen inside text
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([-\w:.]+)""", re.I)


def _line_of(data: bytes | str, offset: int) -> int:
    return data[:offset].count(b"\n" if isinstance(data, bytes) else "\n") + 1


def decode_text(data: bytes, where: str, *, html: bool = False) -> str:
    """Bytes of a text document -> str with "\\n" line ends; DocumentError if it is not text."""
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    if encoding is None and b"\x00" in data:
        offset = data.index(b"\x00")
        line = _line_of(data, offset)
        raise DocumentError(f"binary file, not a text document (NUL byte at line {line})", where=where)
    try:
        text = data.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        declared = _META_CHARSET.search(data[:4096]) if html and encoding is None else None
        text = None
        if declared:
            try:
                text = data.decode(declared.group(1).decode("ascii"))
            except (LookupError, UnicodeDecodeError):
                text = None
        if text is None:
            bad = data[exc.start]
            raise DocumentError(
                f"not UTF-8 text (byte 0x{bad:02x} at line {_line_of(data, exc.start)}); save the file as UTF-8",
                where=where,
            ) from None
    text = _NEWLINES.sub("\n", text)
    text = _INVISIBLE.sub("", text)
    if m := _CONTROL.search(text):
        char, line = ord(m.group()), _line_of(text, m.start())
        raise DocumentError(
            f"binary file, not a text document (control character 0x{char:02x} at line {line})", where=where
        )
    return text


def _docx(data: bytes, where: str) -> Document:
    import io
    import zipfile

    from campaigns.readers.word import parse_docx

    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DocumentError(
            "not a Word .docx file (not a zip package; old .doc files must be saved as .docx)", where=where
        )
    _check_zip_sizes(data, where)
    try:
        return parse_docx(io.BytesIO(data))
    except DocumentError:
        raise
    except Exception as exc:  # python-docx raises KeyError/ValueError/lxml errors for broken packages
        raise DocumentError(f"not a readable Word .docx file ({exc.__class__.__name__}: {exc})", where=where) from None


def _check_zip_sizes(data: bytes, where: str) -> None:
    """Refuse a zip bomb from its directory, before inflating anything (python-docx reads every part).

    zipfile stops each member at the size its directory declares, so the declared sizes bound
    what reading can cost.
    """
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DocumentError(f"not a readable Word .docx file (broken zip: {exc})", where=where) from None
    total = sum(max(i.file_size, 0) for i in infos)
    if len(infos) > 10_000 or total > MAX_UNPACKED:
        mb = total // (1024 * 1024)
        raise DocumentError(
            f"not a plausible Word .docx file: it inflates to {mb} MB in {len(infos)} parts "
            f"(at most {MAX_UNPACKED // (1024 * 1024)} MB)", where=where,
        )


def _reader(suffix: str) -> Callable[[str], Document]:
    if suffix in (".md", ".markdown"):
        from campaigns.readers.markdown import parse_markdown

        return parse_markdown
    if suffix in (".html", ".htm"):
        from campaigns.readers.html import parse_html

        return parse_html
    from campaigns.readers.plaintext import parse_text

    return parse_text


def parse_bytes(data: bytes, suffix: str, where: str) -> Document:
    """A document's bytes -> blocks, chosen by its (lower-case) file extension."""
    suffix = suffix.lower()
    if suffix not in SUPPORTED:
        shown = suffix or "(none)"
        raise DocumentError(f"unsupported file type {shown}; use one of {', '.join(SUPPORTED)}", where=where)
    if not data.strip():
        raise DocumentError("empty file", where=where)
    if suffix == ".docx":
        doc = _docx(data, where)
    else:
        text = decode_text(data, where, html=suffix in (".html", ".htm"))
        if not text.strip():
            raise DocumentError("empty file (only whitespace)", where=where)
        try:
            doc = _reader(suffix)(text)
        except DocumentError as exc:
            if exc.where is None:
                raise DocumentError(str(exc), where=where) from None
            raise
        except RecursionError:  # a safety net: the readers check nesting before they recurse
            raise DocumentError("document nested too deeply to read", where=where) from None
    if not any(b.text.strip() for b in doc.blocks):
        raise DocumentError("no readable text in the document", where=where)
    return doc


def read_document(path: Path) -> Document:
    """Read `path` by its extension. Every failure is a DocumentError naming the file."""
    path = Path(path)
    where = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:  # before touching the disk: a clear message even for a missing .pdf
        parse_bytes(b"", suffix, where)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DocumentError(f"file too large ({size} bytes; at most {MAX_BYTES})", where=where)
        data = path.read_bytes()
    except FileNotFoundError:
        raise DocumentError("no such file", where=where) from None
    except IsADirectoryError:
        raise DocumentError("is a directory, not a document", where=where) from None
    except PermissionError:
        raise DocumentError("permission denied", where=where) from None
    except OSError as exc:
        raise DocumentError(f"cannot read: {exc.strerror or exc}", where=where) from None
    return parse_bytes(data, suffix, where)

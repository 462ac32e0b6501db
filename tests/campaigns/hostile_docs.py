"""Hostile documents for the reader tests (CLI and staff upload): absurd nesting, a zip bomb."""

from __future__ import annotations

import io
import struct
import zipfile

GIB = 1024 ** 3


def deep_html(levels: int = 10_000) -> bytes:
    """A page nested `levels` elements deep around one list (a RecursionError for a naive walk)."""
    return ("<html><body>" + "<div>" * levels + "<ol><li><b>Sleep:</b> rest well.</li></ol>"
            + "</div>" * levels + "</body></html>").encode()


def declared_bomb(size: int = GIB) -> bytes:
    """A small .docx-shaped zip whose directory says word/document.xml inflates to `size` bytes.

    Building a real 1 GiB bomb costs seconds of deflate; the reader decides from the directory
    alone (zipfile never inflates past the declared size), so the declared size is what counts.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"<w:document/>" * 100)
    data = bytearray(buf.getvalue())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (k := data.find(sig, start)) >= 0:
            name_len = struct.unpack_from("<H", data, k + (26 if sig == b"PK\x03\x04" else 28))[0]
            name_at = k + (30 if sig == b"PK\x03\x04" else 46)
            if data[name_at:name_at + name_len] == b"word/document.xml":
                struct.pack_into("<I", data, k + offset, size)
            start = k + 4
    return bytes(data)


def real_bomb(size: int = GIB) -> bytes:
    """A real bomb: word/document.xml of `size` zero bytes deflated (about 1 MB for 1 GiB). Slow to build."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            chunk = b"\0" * (16 * 1024 * 1024)
            for _ in range(size // len(chunk)):
                f.write(chunk)
    return buf.getvalue()

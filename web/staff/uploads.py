"""Uploaded files -> a temporary file with the original suffix, for the file-based readers.

The splitter and the CSV importer read paths (the suffix picks the reader), and their error
messages name the path: `shown_errors` puts the uploaded file's own name back in place of the
temporary one, so staff read "notes.pdf: unsupported file type .pdf", not a /tmp path.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Iterator

from starlette.datastructures import UploadFile

_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


def display_name(upload: UploadFile) -> str:
    """The file's base name as the browser sent it, one line, at most 120 characters."""
    name = PurePath((upload.filename or "upload").replace("\\", "/")).name
    return " ".join(name.split())[:120] or "upload"


@contextmanager
def saved_upload(upload: UploadFile) -> Iterator[Path]:
    """The upload's bytes in a private temporary file named `upload<suffix>`; removed afterwards."""
    suffix = PurePath(display_name(upload)).suffix.lower()
    if not _SAFE_SUFFIX.match(suffix):
        suffix = ""
    folder = Path(tempfile.mkdtemp(prefix="drip-upload-"))
    try:
        path = folder / f"upload{suffix}"
        upload.file.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(upload.file, out, 1024 * 1024)
        os.chmod(path, 0o600)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def shown_error(message: str, path: Path, name: str) -> str:
    """An error message with the temporary path replaced by the uploaded file's name."""
    return " ".join(message.replace(str(path), name).split())

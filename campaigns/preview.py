"""`drip preview`: a document -> a folder of rendered emails to look at before anything is stored.

Everything is rendered in memory first and written into a temporary folder that is renamed into
place at the end, so a bad document or a template error leaves no half-written preview behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import jinja2

from campaigns.draft import Draft
from campaigns.render import TEMPLATES_DIR, Recipient, Renderer, content_from_draft
from drip.config import Settings
from drip.errors import InputError

MARKER = ".drip-preview"  # marks a folder we made, so a re-run may replace it (and nothing else)
SAMPLE_EMAIL = "patient@example.com"


@dataclass(frozen=True)
class PreviewEmail:
    number: int
    slug: str
    kind: str
    section: str
    title: str
    subject: str
    preheader: str
    html: str
    text: str

    @property
    def html_name(self) -> str:
        return f"{self.number:02d}-{self.slug}.html"

    @property
    def text_name(self) -> str:
        return f"{self.number:02d}-{self.slug}.txt"


def slugify(value: str, fallback: str = "email", limit: int = 48) -> str:
    """ASCII file-name slug ("Release of Endorphins" -> "release-of-endorphins")."""
    ascii_ = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")
    if len(slug) > limit:  # cut at a word boundary
        slug = slug[: limit + 1].rsplit("-", 1)[0] if "-" in slug[:limit] else slug[:limit]
    return slug or fallback


def sample_recipient(name: str, base_url: str) -> Recipient:
    base = base_url.rstrip("/")
    return Recipient(
        name=name,
        email=SAMPLE_EMAIL,
        unsubscribe_url=f"{base}/u/preview-sample",
        preferences_url=f"{base}/preferences/preview-sample",
    )


def render_preview(draft: Draft, renderer: Renderer, recipient: Recipient) -> list[PreviewEmail]:
    """Every step of the draft rendered for one sample recipient (in memory)."""
    emails = []
    for i, step in enumerate(draft.steps):
        rendered = renderer.render(content_from_draft(draft, i), recipient)
        emails.append(
            PreviewEmail(
                number=i + 1,
                slug=slugify(step.title or step.subject, fallback=step.kind),
                kind=step.kind,
                section=step.section,
                title=step.title or rendered.subject,
                subject=rendered.subject,
                preheader=rendered.preheader,
                html=rendered.html,
                text=rendered.text,
            )
        )
    return emails


def index_html(draft: Draft, emails: list[PreviewEmail], renderer: Renderer, sample_name: str, source: str) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("preview-index.html").render(
        title=draft.title, emails=emails, clinic=renderer.clinic, theme=renderer.theme,
        sample_name=sample_name, source=source,
    )


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder", where="--out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise InputError(f"{out} is not empty and is not a drip preview folder; choose another", where="--out")


def write_preview(files: dict[str, str], out: Path) -> None:
    """Write `files` (name -> text) as the folder `out`, replacing an earlier preview atomically."""
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    old: Path | None = None
    try:
        os.chmod(tmp, 0o755)
        for name, text in {**files, MARKER: "written by `drip preview`; safe to delete\n"}.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        if old is not None and not out.exists():
            os.rename(old, out)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def preview_file(path: Path, out: Path, *, name: str, settings: Settings) -> tuple[Path, int]:
    """Split `path`, render each step for a sample recipient, write the folder. Returns (index, count)."""
    from campaigns.split import split_file  # the splitter raises DocumentError for bad documents

    _check_out(out)  # fail before the (slower) rendering
    draft = split_file(path)
    renderer = Renderer(settings.clinic, base_url=settings.base_url)
    emails = render_preview(draft, renderer, sample_recipient(name, settings.base_url))
    files: dict[str, str] = {}
    for e in emails:
        files[e.html_name] = e.html
        files[e.text_name] = e.text
    files["index.html"] = index_html(draft, emails, renderer, name, Path(path).name)
    write_preview(files, out)
    return out / "index.html", len(emails)

"""Step versions and newsletters -> personalised emails.

Rendering has two stages so that the expensive part runs once per step version, not per patient:

1. compile (once per `EmailContent.key`): Jinja fills the MJML layout with the article, clinic and
   theme; MJML compiles it (mjml-python); css-inline moves the CSS into `style=` attributes.
   Wherever a template prints `recipient.<field>`, stage 1 writes a stage-2 placeholder
   (`{{ greeting }}`) instead of a value. The result is a small Jinja template.
2. render (per recipient): only that Jinja template runs, with autoescape on.

Article text is data in stage 1, so a `{{`/`{%` written in an article must not become code in stage
2: every stage-1 value has its `{` printed as `{{ '{' }}`, which stage 2 turns back into `{`.

SendGrid sends one request per 1,000 recipients with substitutions, so `CompiledEmail` can also
produce the body once with substitution keys where the recipient fields go; replacing each key
by its value gives exactly `render(recipient)` (tests check it with hypothesis). To keep the
per-recipient part small (it is built, serialized and sent 1,000 times a request), the link URLs
up to the token (`{base_url}/u/`, `{base_url}/preferences/`) are written into the shared body, and
a recipient carries three values: the greeting for HTML and for text, and the link token (one key
in both, since a token is URL-safe and HTML-escaping leaves it as it is). Recipients for that
form are made by `Renderer.recipient(name, email, token)`.
"""

from __future__ import annotations

import hashlib
import re
import threading
import traceback
import types
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import css_inline
import jinja2
import mjml
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

import templates
from campaigns.draft import Draft
from campaigns.theme import Theme, theme_for
from delivery.types import SharedContent
from drip.config import Clinic
from drip.errors import TemplateError
from drip.i18n import N_

TEMPLATES_DIR = Path(templates.__file__).resolve().parent / "email"

#: Per-recipient fields the templates print (`recipient.<field>`).
FIELDS = ("greeting", "unsubscribe_url", "preferences_url")
#: Link paths under the base URL; the web app serves them (web/public.py).
UNSUBSCRIBE_PATH = "/u/"
PREFERENCES_PATH = "/preferences/"

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail hides everything after ~102 KB of HTML behind "View entire message"

_TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MJML_POSITION = re.compile(r"at position (\d+):(\d+)")
_HONORIFICS = {"dr", "mr", "mrs", "ms", "mx", "miss", "prof"}
_LBRACE = "{{ '{' }}"  # how stage 1 prints a literal "{" so stage 2 cannot read it as syntax
# Invisible characters after the preheader so inbox previews do not run on into the body text.
_PREHEADER_PAD = Markup("\u034f\u200c\u00a0" * 40)
_MAX_CACHE = 512
_DEFAULT_CTA = N_("Book a visit")  # drip.config.Clinic.cta_label; translated when the clinic kept it


# --------------------------------------------------------------------------- public values


@dataclass(frozen=True)
class EmailContent:
    """What a step version or a newsletter gives the renderer."""

    key: str  # cache key, e.g. "step:12:v3" or "broadcast:4"; compiled once per key
    title: str
    subject: str
    preheader: str
    body: str  # plain text: paragraphs separated by blank lines; lines starting "- " are bullets
    section: str = ""
    kind: str = "item"  # intro | item | outro | broadcast
    position: int = 0  # 1-based position in the campaign (0: none)
    total: int = 0  # number of steps in the campaign (0: none)
    template: str = "step"
    campaign_title: str = ""
    language: str = ""  # the email's language (drip/i18n.py): its footer, greeting and labels; "" the clinic's


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str
    unsubscribe_url: str
    preferences_url: str = ""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    preheader: str
    html: str
    text: str


# --------------------------------------------------------------------------- small helpers


def one_line(value: str) -> str:
    """Collapse every kind of whitespace (CR, LF, U+2028, tabs) and drop control characters.

    Used for anything that can reach a header (subject) or a one-line slot (name, URL)."""
    line = " ".join(str(value).split())
    if line.isprintable():  # fast path: nothing to drop
        return line
    return "".join(ch for ch in line if ch.isprintable() or unicodedata.category(ch) != "Cc")


def first_name(name: str) -> str:
    """The name to greet: the first word, skipping a leading title ("Dr. Maria Lopez" -> "Maria")."""
    if name.isprintable():  # once per recipient of every send: no control or odd whitespace to clean
        parts = name.split()
    else:
        parts = [p for p in one_line(name).split(" ") if p]
    if len(parts) > 1 and parts[0].rstrip(".").lower() in _HONORIFICS:
        parts = parts[1:]
    return parts[0][:40] if parts else ""


#: The greeting per language (msgids would cost a gettext call per recipient of every send).
_GREETINGS = {"en": ("Hi {first},", "Hello,"), "es": ("Hola, {first}:", "Hola:")}


def greeting(name: str, language: str = "en") -> str:
    """"Hi Maria," (or "Hello," without a name; "Hola, Maria:" in Spanish): raw, one line."""
    first = first_name(name)
    named, anonymous = _GREETINGS.get(language) or _GREETINGS["en"]
    return named.format(first=first) if first else anonymous


_HTML_SPECIAL = re.compile(r"[&<>'\"]").search  # what markupsafe.escape changes


def escape_text(value: str) -> str:
    """`str(markupsafe.escape(value))`, without building a Markup when nothing needs escaping."""
    return str(escape(value)) if _HTML_SPECIAL(value) else value


def recipient_values(r: Recipient, language: str = "en") -> dict[str, str]:
    """The raw (unescaped) per-recipient field values; each is one line."""
    unsubscribe = one_line(r.unsubscribe_url)
    return {
        "greeting": greeting(r.name, language),
        "unsubscribe_url": unsubscribe,
        "preferences_url": one_line(r.preferences_url) or unsubscribe,
    }


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A link token as the renderer substitutes it: URL-safe, and unchanged by HTML escaping.
_LINK_TOKEN = re.compile(r"[A-Za-z0-9._~-]+")


def _newlines(value: str) -> str:
    """LF line ends and no other C0 control characters (MJML's parser rejects them)."""
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def _protect(value: str) -> str:
    return value.replace("{", _LBRACE)


class _Attributes(dict):
    """A patient's attributes in stage 2: an attribute they have no value for prints as nothing."""

    def __missing__(self, key: str) -> str:
        return ""


_ATTRIBUTE_REF = re.compile(r"(?:\{\{ '\{' \}\}){2}\s*patient\.attributes\.([a-z][a-z0-9_]{0,63})\s*\}\}")
_ATTRIBUTE_SLOT = r'{{ attributes["\1"] }}'


class _Slot(Markup):
    """A stage-2 placeholder printed by stage 1 (passes through the stage-1 escaping untouched)."""


_SLOTS = types.SimpleNamespace(**{f: _Slot("{{ %s }}" % f) for f in FIELDS})


def _finalize_html_stage1(value: Any) -> Any:
    if isinstance(value, _Slot):
        return value
    if value is None:
        return ""
    markup = value if isinstance(value, Markup) else escape(_newlines(str(value)))
    return Markup(_protect(str(markup)))


def _finalize_text_stage1(value: Any) -> Any:
    if isinstance(value, _Slot):
        return str(value)
    return "" if value is None else _protect(_newlines(str(value)))


def _finalize_direct(value: Any) -> Any:
    if value is None:
        return ""
    return value if isinstance(value, Markup) else _newlines(str(value))


def _stage2_env() -> jinja2.Environment:
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        # "{#" can legitimately occur in compiled CSS/HTML: move comment syntax out of the way.
        comment_start_string="{#drip:",
        comment_end_string=":drip#}",
    )
    # Stage-2 templates only print names. Without globals, Jinja's per-render context set-up
    # (which copies the globals) costs a third as much: it dominates a 20 KB render.
    env.globals.clear()
    return env


_STAGE2 = _stage2_env()

# Plain text in, safe HTML out: raw HTML is escaped, only paragraphs, lists, emphasis and links
# (markdown-it refuses javascript: URLs) survive. Headings, code blocks and images stay text.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).disable(
    ["code", "fence", "blockquote", "hr", "heading", "lheading", "reference", "html_block",
     "html_inline", "backticks", "entity", "image"]
)


# A bare http(s) address in the text (not already inside a markdown link or <...>): trailing
# sentence punctuation and a closing bracket stay outside the link.
_BARE_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+?(?=[.,;:!?)\]]*(?:\s|$))", re.IGNORECASE)


def _autolink(text: str) -> str:
    """Bare URLs become CommonMark autolinks (<https://...>), so the email links them; only
    http and https (markdown-it refuses javascript: and the like anyway)."""
    def link(m: re.Match[str]) -> str:
        before = text[max(0, m.start() - 2) : m.start()]
        if before.endswith("<") or before == "](":
            return m.group(0)
        return f"<{m.group(0)}>"

    return _BARE_URL.sub(link, text) if "://" in text else text


def body_html(body: str) -> Markup:
    """The body as HTML: paragraphs, "- " bullets, *emphasis*, links; everything else escaped."""
    return Markup(_MARKDOWN.render(_autolink(_newlines(body).strip())))


def body_text(body: str) -> str:
    """The body as plain text: newlines normalised, trailing spaces and extra blank lines removed."""
    lines = [line.rstrip() for line in _newlines(body).strip().split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def derive_preheader(body: str, limit: int = 140) -> str:
    """A preheader from the body's first sentence when none was written (inbox preview text)."""
    text = one_line(re.sub(r"(?m)^\s*[-*•]\s+", "", _newlines(body)).replace("*", ""))
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    sentence = match.group(1) if match else text
    if len(sentence) <= limit:
        return sentence
    cut = sentence[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def _tidy_text(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# --------------------------------------------------------------------------- compiled email


@dataclass(frozen=True)
class SubstitutionKeys:
    """The keys a provider replaces per recipient (none occurs in the article or layout)."""

    greeting_html: str
    greeting_text: str
    token: str  # the link token, in the unsubscribe and preferences URLs, HTML and text alike

    def all(self) -> tuple[str, str, str]:
        return (self.greeting_html, self.greeting_text, self.token)


class CompiledEmail:
    """One content compiled to HTML/text Jinja templates; renders a recipient in microseconds."""

    def __init__(
        self, key: str, subject: str, preheader: str, html_source: str, text_source: str, base_url: str = "",
        language: str = "en",
    ) -> None:
        self.key = key
        self.language = language
        self.subject = subject
        self.preheader = preheader
        self.html_source = html_source  # stage-2 template source (compiled MJML, CSS inlined)
        self.text_source = text_source
        base = base_url.rstrip("/")
        self.unsubscribe_prefix = base + UNSUBSCRIBE_PATH
        self.preferences_prefix = base + PREFERENCES_PATH
        # one_line() leaves "{prefix}<token>" as it is only when the prefixes are one clean line:
        # then substitutions() may skip it (see there).
        self._plain_prefixes = all(one_line(p) == p for p in (self.unsubscribe_prefix, self.preferences_prefix))
        # `{{ patient.attributes.KEY }}` written in an article (stage 1 printed its braces as
        # literals) becomes a stage-2 lookup: the only article text that turns into code.
        html_source, n_html = _ATTRIBUTE_REF.subn(_ATTRIBUTE_SLOT, html_source)
        text_source, n_text = _ATTRIBUTE_REF.subn(_ATTRIBUTE_SLOT, text_source)
        self.uses_attributes = bool(n_html or n_text)
        self.html_source, self.text_source = html_source, text_source
        # One template, two blocks: a recipient costs one Jinja context, not two. The text block
        # turns autoescape off (it is plain text); the HTML block escapes every value.
        self._template = _STAGE2.from_string(
            "{% block html %}" + html_source + "{% endblock %}"
            "{% block text %}{% autoescape false %}" + text_source + "{% endautoescape %}{% endblock %}"
        )
        self._html_block = self._template.blocks["html"]
        self._text_block = self._template.blocks["text"]
        self.keys = self._choose_keys()

    def _choose_keys(self) -> SubstitutionKeys:
        """Substitution keys that occur nowhere in the article, layout or link prefixes (else add
        a counter)."""
        fixed = (self.html_source, self.text_source, self.unsubscribe_prefix, self.preferences_prefix)
        for n in range(1000):
            suffix = f"_{n}" if n else ""
            keys = SubstitutionKeys(
                f"-drip_greeting_html{suffix}-", f"-drip_greeting_text{suffix}-", f"-drip_token{suffix}-"
            )
            if not any(k in source for k in keys.all() for source in fixed):
                return keys
        raise TemplateError(f"{self.key}: could not choose substitution keys")  # pragma: no cover

    def values(self, r: Recipient) -> dict[str, str]:
        """The per-recipient field values (raw, unescaped), shared by render() and substitutions()."""
        values = recipient_values(r, self.language)
        if any("-drip_" in v for v in values.values()):
            # A value holding a substitution key would be substituted twice by a provider.
            keys = self.keys.all()
            for field, value in values.items():
                while any(k in value for k in keys):
                    for k in keys:
                        value = value.replace(k, "")
                values[field] = value
        return values

    def _render(self, html_values: dict[str, str], text_values: dict[str, str]) -> tuple[str, str]:
        html_ctx = self._template.new_context(html_values)
        text_ctx = html_ctx if text_values is html_values else self._template.new_context(text_values)
        return "".join(self._html_block(html_ctx)), "".join(self._text_block(text_ctx))

    def render(self, r: Recipient, attributes: dict[str, str] | None = None) -> RenderedEmail:
        """Jinja only: the fast per-recipient path. `attributes`: the patient's display values."""
        values = self.values(r)
        if self.uses_attributes:
            values = {**values, "attributes": _Attributes(attributes or {})}  # type: ignore[dict-item]
        html, text = self._render(values, values)
        return RenderedEmail(self.subject, self.preheader, html, text)

    @cached_property
    def _shared(self) -> SharedContent:
        if self.uses_attributes:  # each patient's body differs: the dispatcher renders these one by one
            raise TemplateError(f"{self.key}: prints patient attributes, so it has no shared body")
        keys = self.keys
        links = {
            "unsubscribe_url": self.unsubscribe_prefix + keys.token,
            "preferences_url": self.preferences_prefix + keys.token,
        }
        html, text = self._render({"greeting": keys.greeting_html, **links}, {"greeting": keys.greeting_text, **links})
        return SharedContent(key=self.key, subject=self.subject, html=html, text=text)

    def shared_content(self) -> SharedContent:
        """The body once, with substitution keys where recipient fields go (SendGrid)."""
        return self._shared

    def link_token(self, values: dict[str, str]) -> str:
        """The token of `values`' links; ValueError unless they are `{prefix}<token>` with one
        URL-safe token (as `Renderer.recipient` makes them)."""
        unsubscribe = values["unsubscribe_url"]
        prefix = self.unsubscribe_prefix
        token = unsubscribe[len(prefix):]
        if not (
            unsubscribe.startswith(prefix)
            and values["preferences_url"] == self.preferences_prefix + token
            and _LINK_TOKEN.fullmatch(token)
        ):
            # The URLs are not echoed: their tokens work as unsubscribe links.
            raise ValueError(
                f"{self.key}: substitutions need links of the form {prefix}<token> and "
                f"{self.preferences_prefix}<token> (build the recipient with Renderer.recipient)"
            )
        return token

    def substitutions(self, r: Recipient) -> dict[str, str]:
        """Key -> value for one recipient: the greeting HTML-escaped and raw, and the link token
        (the same in HTML and text: escaping leaves a URL-safe token unchanged)."""
        unsubscribe, prefix = r.unsubscribe_url, self.unsubscribe_prefix
        if unsubscribe.startswith(prefix):
            token = unsubscribe[len(prefix):]
            if r.preferences_url == self.preferences_prefix + token:
                plain = self._plain_substitutions(r.name, token)
                if plain is not None:
                    return plain
        values = self.values(r)
        token = self.link_token(values)
        hello = values["greeting"]
        keys = self.keys
        return {keys.greeting_html: escape_text(hello), keys.greeting_text: hello, keys.token: token}

    def personalize(self, name: str, token: str) -> tuple[str, dict[str, str]]:
        """(unsubscribe URL, substitutions) for a recipient whose links carry `token`: exactly
        `substitutions(Renderer.recipient(name, email, token))` and its `unsubscribe_url`, without
        building the links twice and taking them apart again (the dispatcher's per-recipient call)."""
        unsubscribe = self.unsubscribe_prefix + token
        plain = self._plain_substitutions(name, token)
        if plain is None:
            plain = self.substitutions(Recipient(name, "", unsubscribe, self.preferences_prefix + token))
        return unsubscribe, plain

    def _plain_substitutions(self, name: str, token: str) -> dict[str, str] | None:
        """The fast path, once per recipient of every send: links made by Renderer.recipient (a
        URL-safe token after clean prefixes, so one_line() would change nothing) and no key in any
        value (nothing to strip). It gives what the general path gives, without building values();
        None where the general path must decide."""
        if self._plain_prefixes and _LINK_TOKEN.fullmatch(token) and "-drip_" not in token:
            hello = greeting(name, self.language)
            if "-drip_" not in hello:
                keys = self.keys
                return {keys.greeting_html: escape_text(hello), keys.greeting_text: hello, keys.token: token}
        return None


# --------------------------------------------------------------------------- renderer


class Renderer:
    """Compiles `EmailContent` with the clinic's branding and renders it per recipient.

    Compiled emails are kept in a bounded LRU keyed by `content.key` (a new step version gets a
    new key, so edits are picked up without invalidation)."""

    def __init__(
        self,
        clinic: Clinic,
        base_url: str = "",
        *,
        templates_dir: Path | None = None,
        cache_size: int = _MAX_CACHE,
    ) -> None:
        self.clinic = clinic
        self.base_url = base_url.rstrip("/")
        self.templates_dir = Path(templates_dir) if templates_dir else TEMPLATES_DIR
        self.theme: Theme = theme_for(clinic.brand_color)
        self._cache: OrderedDict[str, CompiledEmail] = OrderedDict()
        self._cache_size = max(1, cache_size)
        self._lock = threading.Lock()
        loader = jinja2.FileSystemLoader(str(self.templates_dir))
        common = dict(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      extensions=["jinja2.ext.i18n"])
        self._html_env = jinja2.Environment(autoescape=True, finalize=_finalize_html_stage1, **common)
        self._text_env = jinja2.Environment(autoescape=False, finalize=_finalize_text_stage1, **common)
        self._direct_html_env = jinja2.Environment(autoescape=True, finalize=_finalize_direct, **common)
        self._direct_text_env = jinja2.Environment(autoescape=False, finalize=_finalize_direct, **common)
        for env in (self._html_env, self._text_env, self._direct_html_env, self._direct_text_env):
            # gettext comes with each render, in the email's language (`_stage1`)
            env.policies["ext.i18n.trimmed"] = True
            env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
        # load_remote_stylesheets=False: the default fetches linked stylesheets over the network.
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=True)

    # -- public API

    def language_of(self, content: EmailContent) -> str:
        from drip.i18n import LANGUAGES

        language = content.language or getattr(self.clinic, "language", "en")
        return language if language in LANGUAGES else "en"

    def compile(self, content: EmailContent) -> CompiledEmail:
        key = f"{content.key}@{content.language}" if content.language else content.key
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        compiled = self._compile(content)
        with self._lock:
            self._cache[key] = compiled
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return compiled

    def render(self, content: EmailContent, r: Recipient) -> RenderedEmail:
        return self.compile(content).render(r)

    def recipient(self, name: str, email: str, token: str) -> Recipient:
        """A recipient whose unsubscribe and preferences links carry `token` (a URL-safe link
        token): the form `CompiledEmail.substitutions` needs."""
        return Recipient(
            name=name, email=email, unsubscribe_url=f"{self.base_url}{UNSUBSCRIBE_PATH}{token}",
            preferences_url=f"{self.base_url}{PREFERENCES_PATH}{token}",
        )

    def render_direct(self, content: EmailContent, r: Recipient) -> RenderedEmail:
        """Reference path: Jinja + MJML + CSS inlining for this one recipient, no cache.

        Slow (hundreds of microseconds); the benchmark's baseline and a cross-check in tests."""
        context = self._context(content)
        recipient = types.SimpleNamespace(**recipient_values(r, self.language_of(content)))
        name = self._template_name(content)
        html = self._to_html(self._stage1(self._direct_html_env, f"{name}.mjml", context, recipient), name)
        text = _tidy_text(self._stage1(self._direct_text_env, f"{name}.txt", context, recipient))
        return RenderedEmail(context["email"]["subject"], context["email"]["preheader"], html, text)

    # -- stages

    def _compile(self, content: EmailContent) -> CompiledEmail:
        context = self._context(content)
        name = self._template_name(content)
        html = self._to_html(self._stage1(self._html_env, f"{name}.mjml", context, _SLOTS), name)
        text = _tidy_text(self._stage1(self._text_env, f"{name}.txt", context, _SLOTS))
        email = context["email"]
        language = self.language_of(content)
        # A translation is another email: SendGrid's shared bodies are told apart by this key.
        key = f"{content.key}:{content.language}" if content.language else content.key
        try:
            return CompiledEmail(key, email["subject"], email["preheader"], html, text, self.base_url, language)
        except jinja2.TemplateSyntaxError as exc:  # would be a bug in the stage-1 escaping
            raise TemplateError(f"email template {name}: compiled output is not a valid template: {exc}") from exc

    def _template_name(self, content: EmailContent) -> str:
        name = content.template or "step"
        if not _TEMPLATE_NAME.match(name):
            raise TemplateError(f"email template name {name!r} is not valid (letters, digits, - and _)")
        return name

    def _stage1(self, env: jinja2.Environment, filename: str, context: dict, recipient: Any) -> str:
        from drip.i18n import template_callables

        words = template_callables(context["email"]["language"], autoescape=env.autoescape is True)
        try:
            return env.get_template(filename).render(context, recipient=recipient, **words)
        except jinja2.TemplateSyntaxError as exc:
            where = exc.name or exc.filename or filename
            raise TemplateError(f"email template {where} line {exc.lineno}: {exc.message}") from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"email template {exc.name} not found in {self.templates_dir}") from exc
        except jinja2.TemplateError as exc:  # undefined names and other runtime errors
            raise TemplateError(f"{self._where(exc, filename)}: {exc}") from exc

    def _where(self, exc: BaseException, filename: str) -> str:
        """Template file and line of a Jinja runtime error (Jinja rewrites tracebacks to template lines)."""
        root = str(self.templates_dir.resolve())
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            path = Path(frame.filename)
            if str(path.resolve()).startswith(root) and path.suffix in {".mjml", ".txt"}:
                return f"email template {path.resolve().relative_to(root)} line {frame.lineno}"
        return f"email template {filename}"

    def _to_html(self, source: str, name: str) -> str:
        try:
            # fonts={}: no web-font imports (they need the network and most clients block them).
            html = mjml.mjml2html(source, fonts={})
        except ValueError as exc:
            message = str(exc)
            match = _MJML_POSITION.search(message)
            if match:
                start = int(match.group(1))
                line_no = source.count("\n", 0, start) + 1
                line = source.splitlines()[line_no - 1].strip() if source.splitlines() else ""
                raise TemplateError(
                    f"email template {name}.mjml: MJML error at line {line_no} of the rendered MJML "
                    f"({line[:80]!r}): {message}"
                ) from exc
            raise TemplateError(f"email template {name}.mjml: MJML error: {message}") from exc
        try:
            return self._inliner.inline(html)
        except ValueError as exc:  # pragma: no cover - css-inline only fails on broken CSS
            raise TemplateError(f"email template {name}.mjml: CSS inlining failed: {exc}") from exc

    # -- context

    def _context(self, content: EmailContent) -> dict[str, Any]:
        from drip.i18n import gettext_for

        clinic = self.clinic
        language = self.language_of(content)
        _ = gettext_for(language)
        is_item = content.kind != "broadcast" and 0 < content.position <= content.total
        subject = one_line(content.subject) or one_line(content.title)
        preheader = one_line(content.preheader) or derive_preheader(content.body) or subject
        title = one_line(content.title) or subject
        eyebrow = one_line(content.section) or (one_line(content.campaign_title) if content.kind == "broadcast" else "")
        if eyebrow.casefold() == title.casefold():  # an untitled step under a heading: say it once
            eyebrow = ""
        if content.kind == "broadcast":
            reason = _("You receive this email because you signed up at {clinic} for its newsletter.").format(
                clinic=clinic.name)
        elif content.campaign_title:
            reason = _("You receive this email because you signed up at {clinic} for the series "
                       "\u201c{series}\u201d.").format(clinic=clinic.name, series=one_line(content.campaign_title))
        else:
            reason = _("You receive this email because you signed up at {clinic} for educational emails.").format(
                clinic=clinic.name)
        email = {
            "language": language,
            "kind": content.kind,
            "subject": subject,
            "preheader": preheader,
            "preheader_pad": _PREHEADER_PAD,
            "title": title,
            "title_rule": "=" * min(len(title), 72),
            "eyebrow": eyebrow,
            "progress": _("Step {position} of {total}").format(position=content.position, total=content.total)
            if is_item else "",
            "progress_pct": max(4, round(100 * content.position / content.total)) if is_item else 0,
            "campaign_title": one_line(content.campaign_title),
            "body_html": body_html(content.body),
            "body_text": body_text(content.body),
            "reason": reason,
            "disclaimer": _("It is general health education, not medical advice."),
            "logo_url": self._logo_url(),
            "phone_link": re.sub(r"[^\d+]", "", clinic.phone),
            "website_label": re.sub(r"^https?://(www\.)?", "", clinic.website).rstrip("/"),
            "cta_url": self._cta_url(),
            "cta_label": self._cta_label(language),
        }
        return {"email": email, "clinic": clinic, "theme": self.theme}

    def _cta_label(self, language: str) -> str:
        """The clinic's own label; the default one ("Book a visit") in the email's language."""
        from drip.i18n import gettext_for

        label = one_line(self.clinic.cta_label)
        return gettext_for(language)(_DEFAULT_CTA) if label in ("", _DEFAULT_CTA) else label

    def _cta_url(self) -> str:
        """The call to action's link (the clinic's booking page), http(s) only; '' hides the button."""
        url = one_line(self.clinic.booking_url)
        return url if re.match(r"^https?://[^\s<>\"']+$", url) else ""

    def _logo_url(self) -> str:
        logo = one_line(self.clinic.logo_url)
        if logo and not re.match(r"^https?://", logo) and self.base_url:
            logo = urljoin(self.base_url + "/", logo.lstrip("/"))
        return logo if re.match(r"^https?://", logo) else ""


def content_from_draft(draft: Draft, index: int) -> EmailContent:
    """EmailContent for step `index` (0-based) of a splitter `Draft`: for previews and benchmarks."""
    step = draft.steps[index]
    digest = hashlib.sha1(
        "\x1f".join([draft.title, step.kind, step.section, step.title, step.subject, step.preheader, step.text]).encode()
    ).hexdigest()[:12]
    return EmailContent(
        key=f"draft:{index}:{digest}",
        title=step.title,
        subject=step.subject,
        preheader=step.preheader,
        body=step.text,
        section=step.section,
        kind=step.kind,
        position=index + 1,
        total=len(draft.steps),
        campaign_title=draft.title,
    )


__all__ = [
    "CompiledEmail",
    "EmailContent",
    "FIELDS",
    "GMAIL_CLIP_BYTES",
    "PREFERENCES_PATH",
    "Recipient",
    "RenderedEmail",
    "Renderer",
    "SubstitutionKeys",
    "TEMPLATES_DIR",
    "UNSUBSCRIBE_PATH",
    "body_html",
    "body_text",
    "content_from_draft",
    "derive_preheader",
    "first_name",
    "greeting",
    "one_line",
    "recipient_values",
]

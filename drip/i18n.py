"""Languages: which ones drip speaks, a patient's language, and the gettext catalogs (Babel).

The patient pages (subscribe, confirm, unsubscribe, preferences) and the email footers are
translated with gettext: templates mark text with `{% trans %}` / `_()` (jinja2.ext.i18n), Python
marks it with `_()` or `N_()`, and `pybabel extract` collects it into drip/locales/messages.pot
(see README "Languages"). Each language's catalog is a committed .po file; it is compiled by
Babel in memory the first time it is needed, so a fresh clone needs no build step and there is no
.mo file to forget to rebuild.

A language is a short code from `LANGUAGES`. Which one a page uses: the patient's stored
language, else the browser's Accept-Language, else the clinic's default (`choose`).
"""

from __future__ import annotations

import gettext as _gettext
import io
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from drip.errors import InputError

LOCALE_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"
SOURCE_LANGUAGE = "en"  # the language the msgids are written in
#: Supported languages, each with its name in itself (for a language menu).
LANGUAGES: dict[str, str] = {"en": "English", "es": "Español"}
#: Their names in English, for staff pages and command-line messages.
ENGLISH_NAMES: dict[str, str] = {"en": "English", "es": "Spanish"}
#: Other names people type in a CSV column or an API call.
_ALIASES = {"english": "en", "eng": "en", "spanish": "es", "español": "es", "espanol": "es", "spa": "es"}


def N_(message: str) -> str:
    """Marks a string for extraction where it is translated later (by the template)."""
    return message


def normalize_language(value: str | None) -> str | None:
    """A supported code for `value` ("es", "ES", "es-MX", "es_US", "Spanish"), None for empty.

    InputError(where="language") names the supported codes otherwise."""
    text = (value or "").strip()
    if not text:
        return None
    lowered = text.lower().replace("_", "-")
    code = _ALIASES.get(lowered, lowered.split("-", 1)[0])
    if code in LANGUAGES:
        return code
    shown = text if len(text) <= 20 else text[:20] + "..."
    raise InputError(f"unsupported language {shown!r} (use one of: {', '.join(LANGUAGES)})", where="language")


def parse_accept_language(header: str | None) -> list[str]:
    """The supported codes of an Accept-Language header, best first (q-values honoured, q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "")[:1000].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        code = tag.strip().lower().replace("_", "-").split("-", 1)[0]
        if quality > 0 and code in LANGUAGES:
            ranked.append((-quality, index, code))
    return list(dict.fromkeys(code for _, _, code in sorted(ranked)))


def choose(stored: str | None, accept_language: str | None, default: str) -> str:
    """The patient's stored language, else the browser's best supported one, else the clinic's."""
    if stored in LANGUAGES:
        return stored  # type: ignore[return-value]
    for code in parse_accept_language(accept_language):
        return code
    return default if default in LANGUAGES else SOURCE_LANGUAGE


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=None)
def translations(language: str) -> _gettext.NullTranslations:
    """The gettext translations of a language: its .po compiled by Babel in memory (cached)."""
    if language == SOURCE_LANGUAGE or language not in LANGUAGES:
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po_path(language).open("rb") as fh:
        catalog = read_po(fh, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)  # a fuzzy (unchecked) entry falls back to English
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


def gettext_for(language: str) -> Callable[[str], str]:
    return translations(language).gettext


def template_callables(language: str, autoescape: bool = True) -> dict[str, Any]:
    """`gettext`, `ngettext` and `_` for a Jinja render in `language`, as jinja2.ext.i18n's
    "newstyle" gettext expects them: they do the `%(name)s` formatting themselves, and under
    autoescape the variables are escaped and the (trusted) catalog text is not."""
    from markupsafe import Markup

    t = translations(language)

    def _gettext_(message: str, **variables: Any) -> str:
        text = t.gettext(message)
        if autoescape:
            text = Markup(text)
        return text % variables

    def _ngettext_(singular: str, plural: str, n: int, **variables: Any) -> str:
        variables.setdefault("num", n)
        text = t.ngettext(singular, plural, n)
        if autoescape:
            text = Markup(text)
        return text % variables

    return {"gettext": _gettext_, "_": _gettext_, "ngettext": _ngettext_, "lang": language}

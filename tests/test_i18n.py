"""drip/i18n.py: language codes, Accept-Language, the choice of a page's language, and the catalogs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from hypothesis import given, strategies as st

from drip.config import load_settings
from drip.errors import ConfigurationError, InputError
from drip.i18n import (
    LANGUAGES,
    SOURCE_LANGUAGE,
    choose,
    normalize_language,
    parse_accept_language,
    po_path,
    template_callables,
    translations,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value,code", [
    ("es", "es"), ("ES", "es"), (" es-MX ", "es"), ("es_US", "es"), ("Spanish", "es"), ("español", "es"),
    ("en", "en"), ("en-GB", "en"), ("English", "en"), ("", None), ("  ", None), (None, None),
])
def test_normalize_language_accepts_codes_regions_and_names(value, code):
    assert normalize_language(value) == code


@pytest.mark.parametrize("value", ["fr", "klingon", "e", "es!" * 20])
def test_an_unsupported_language_names_the_field_and_the_choices(value):
    with pytest.raises(InputError) as err:
        normalize_language(value)
    assert err.value.where == "language"
    assert "en, es" in str(err.value) and len(str(err.value)) < 120


@pytest.mark.parametrize("header,expected", [
    ("es-MX,es;q=0.9,en;q=0.8", ["es", "en"]),
    ("en-US,en;q=0.9,es;q=0.8", ["en", "es"]),
    ("fr-FR,fr;q=0.9,es;q=0.5", ["es"]),
    ("en;q=0.2, es;q=0.7", ["es", "en"]),
    ("es;q=0", []),
    ("*", []),
    ("", []),
    (None, []),
    ("es;q=abc, en", ["en"]),
])
def test_accept_language_is_ranked_by_quality(header, expected):
    assert parse_accept_language(header) == expected


@given(st.text(max_size=300))
def test_accept_language_parser_never_fails_and_returns_supported_codes_once(header):
    codes = parse_accept_language(header)
    assert set(codes) <= set(LANGUAGES) and len(codes) == len(set(codes))


@given(st.lists(st.tuples(st.sampled_from(["en", "es", "fr", "de", "es-MX", "en-GB"]),
                          st.integers(min_value=0, max_value=1000)), max_size=6))
def test_accept_language_best_quality_wins(pairs):
    header = ", ".join(f"{tag};q={q / 1000:.3f}" for tag, q in pairs)
    codes = parse_accept_language(header)
    best: dict[str, int] = {}
    for tag, q in pairs:
        code = tag.split("-")[0]
        if code in LANGUAGES and q > 0:
            best[code] = max(best.get(code, 0), q)
    assert set(codes) == set(best)
    assert [best[c] for c in codes] == sorted((best[c] for c in codes), reverse=True)


def test_stored_language_beats_the_browser_which_beats_the_clinic():
    assert choose("es", "en-US,en", "en") == "es"
    assert choose(None, "es-ES,es;q=0.9", "en") == "es"
    assert choose(None, "fr-FR", "es") == "es"
    assert choose(None, None, "en") == "en"
    assert choose("xx", None, "es") == "es"  # a stored value drip does not speak falls through


def test_the_clinic_language_setting_is_checked_at_start_up(tmp_path):
    assert load_settings({"DRIP_CLINIC_LANGUAGE": "es"}, tmp_path / "none.toml").clinic.language == "es"
    with pytest.raises(ConfigurationError, match="DRIP_CLINIC_LANGUAGE"):
        load_settings({"DRIP_CLINIC_LANGUAGE": "fr"}, tmp_path / "none.toml")


def test_spanish_is_compiled_from_the_committed_po_at_run_time():
    assert translations("es").gettext("Unsubscribe") == "Darse de baja"
    assert translations("en").gettext("Unsubscribe") == "Unsubscribe"


def test_template_callables_escape_variables_but_not_the_catalog_text():
    _ = template_callables("es")["gettext"]
    out = _("Your first email from the series <strong>%(series)s</strong> is on its way.", series="<b>x</b>")
    assert out == "Su primer correo de la serie <strong>&lt;b&gt;x&lt;/b&gt;</strong> ya está en camino."
    plain = template_callables("es", autoescape=False)["gettext"]
    assert plain("For %(email)s.", email="<a>") == "Para <a>."


# --------------------------------------------------------------------------- the catalogs


def _catalog(language: str):
    with po_path(language).open("rb") as fh:
        return read_po(fh, locale=language)


def _extracted() -> set[str]:
    """What `pybabel extract -F babel.cfg` finds in the sources now."""
    method_map, options_map = parse_mapping_cfg(io.StringIO((ROOT / "babel.cfg").read_text()))
    ids = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def test_every_string_in_the_sources_is_in_the_spanish_catalog_and_nothing_stale():
    """A new or changed English string without `pybabel update` fails here (README "Languages")."""
    extracted = _extracted()
    assert len(extracted) > 100  # the extraction ran over the templates, not over nothing
    in_catalog = {m.id for m in _catalog("es") if m.id}
    assert sorted(extracted - in_catalog) == [], "run pybabel extract + update (README Languages)"
    assert sorted(in_catalog - extracted) == [], "stale entries: run pybabel update"


def test_every_spanish_msgstr_is_filled_checked_and_keeps_the_placeholders():
    import re

    problems = []
    for m in _catalog("es"):
        if not m.id:
            continue
        if not m.string or not str(m.string).strip():
            problems.append(f"empty: {m.id!r}")
        elif m.fuzzy:
            problems.append(f"fuzzy: {m.id!r}")
        elif m.string == m.id:
            problems.append(f"same as English: {m.id!r}")
        placeholders = r"%\(\w+\)s|\{\w+\}|</?\w+[^>]*>"
        if sorted(re.findall(placeholders, m.id)) != sorted(re.findall(placeholders, str(m.string))):
            problems.append(f"placeholders or tags differ: {m.id!r}")
    assert problems == []


def test_source_language_is_english():
    assert SOURCE_LANGUAGE == "en" and set(LANGUAGES) == {"en", "es"}

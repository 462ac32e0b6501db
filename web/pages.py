"""The Jinja2 environment for web pages (templates/web/), shared by the public and staff pages.

Autoescape is always on: names and list labels come from patients and staff. Every page extends
`base.html`, which carries the clinic's name, colour and postal address and is readable on a
phone (viewport meta, one fluid column). The stylesheet is a template too, rendered once per app
with the clinic's brand colour and served from `/static/site.css`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Mapping

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

import templates as _templates_pkg
from drip.config import Settings
from drip.i18n import SOURCE_LANGUAGE, choose, template_callables

TEMPLATE_DIR = Path(_templates_pkg.__file__).resolve().parent / "web"
DEFAULT_BRAND = "#2f6f6a"
_HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")

# Pages reached through a token in the URL: never cached by a shared cache, never indexed.
PRIVATE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}


def brand_color(value: str) -> str:
    """The clinic colour if it is a plain hex colour, else the default (it lands inside CSS)."""
    return value if _HEX_COLOR.match(value or "") else DEFAULT_BRAND


@jinja2.pass_context
def _path_for(context: Mapping[str, Any], name: str, /, **params: Any) -> str:
    # A path, not an absolute URL: an absolute one would be built from the request's Host header.
    request: Request = context["request"]
    return str(request.app.url_path_for(name, **params))


def make_environment(settings: Settings) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # Patient pages are translated (drip/i18n.py): `render(..., language=)` puts that language's
    # gettext into the page's context; every other page (staff) gets the English originals.
    env.policies["ext.i18n.trimmed"] = True
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(template_callables(SOURCE_LANGUAGE))
    env.globals["clinic"] = settings.clinic
    env.globals["brand"] = brand_color(settings.clinic.brand_color)
    env.globals["path_for"] = _path_for
    return env


class Stylesheet:
    """site.css rendered once with the brand colour; its hash versions the URL for caching."""

    def __init__(self, env: jinja2.Environment) -> None:
        self.body = env.get_template("site.css").render().encode("utf-8")
        self.version = hashlib.sha256(self.body).hexdigest()[:12]


def make_templates(settings: Settings) -> Jinja2Templates:
    env = make_environment(settings)
    stylesheet = Stylesheet(env)
    env.globals["css_version"] = stylesheet.version
    templates = Jinja2Templates(env=env)
    templates.stylesheet = stylesheet  # type: ignore[attr-defined]
    return templates


def rebrand(templates: Jinja2Templates, settings: Settings) -> None:
    """The clinic's colour changed in the web app: re-render site.css (a new hash, a new URL)."""
    env = templates.env
    env.globals["clinic"] = settings.clinic
    env.globals["brand"] = brand_color(settings.clinic.brand_color)
    stylesheet = Stylesheet(env)
    env.globals["css_version"] = stylesheet.version
    templates.stylesheet = stylesheet  # type: ignore[attr-defined]


def render(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    private: bool = False,
    headers: Mapping[str, str] | None = None,
    language: str | None = None,
) -> Response:
    """A page; `language`: translate it (a patient page, see `page_language`), else English."""
    all_headers = dict(PRIVATE_HEADERS if private else {})
    all_headers.update(headers or {})
    context = dict(context or {})
    if language is not None:
        context.update(template_callables(language))
        all_headers.setdefault("Content-Language", language)
        all_headers.setdefault("Vary", "Accept-Language")
    ctx = getattr(request.app.state, "web", None)
    if ctx is not None:  # the clinic as saved in the web app (drip/clinic_settings.py), not as at start-up
        context.setdefault("clinic", ctx.settings.clinic)
        context.setdefault("brand", brand_color(ctx.settings.clinic.brand_color))
    return templates.TemplateResponse(request, name, context, status_code=status_code, headers=all_headers)


def page_language(request: Request, stored: str | None = None) -> str:
    """The language of a patient page: the patient's stored one, else Accept-Language, else the clinic's."""
    ctx = getattr(request.app.state, "web", None)
    default = ctx.settings.clinic.language if ctx is not None else SOURCE_LANGUAGE
    return choose(stored, request.headers.get("accept-language"), default)

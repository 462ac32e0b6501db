"""Template mistakes become one TemplateError naming the template file and the line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from campaigns.render import TEMPLATES_DIR, Renderer
from drip.config import Clinic
from drip.errors import TemplateError
from tests.campaigns.render_samples import content, recipient


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A private copy of the real email templates that a test may break."""
    target = tmp_path / "email"
    shutil.copytree(TEMPLATES_DIR, target)
    return target


def insert_line(path: Path, line_no: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines.insert(line_no - 1, text)
    path.write_text("\n".join(lines) + "\n")


def test_the_shipped_templates_compile(templates):
    assert "Hi Maria," in Renderer(Clinic(), templates_dir=templates).render(content(), recipient()).text


def test_jinja_syntax_error_names_template_and_line(templates):
    insert_line(templates / "step.mjml", 5, "{% endfor %}")
    with pytest.raises(TemplateError, match=r"email template step\.mjml line 5: .*endfor"):
        Renderer(Clinic(), templates_dir=templates).compile(content())


def test_syntax_error_in_a_partial_names_the_partial(templates):
    insert_line(templates / "partials" / "footer.mjml", 3, "{{ clinic.name | }}")
    with pytest.raises(TemplateError, match=r"partials/footer\.mjml line 3"):
        Renderer(Clinic(), templates_dir=templates).compile(content())


def test_undefined_name_names_template_and_line(templates):
    insert_line(templates / "partials" / "footer.mjml", 4, "{{ clinic.fax_number }}")
    with pytest.raises(TemplateError, match=r"email template partials/footer\.mjml line 4: .*fax_number"):
        Renderer(Clinic(), templates_dir=templates).compile(content())


def test_text_template_errors_are_reported_too(templates):
    insert_line(templates / "step.txt", 2, "{{ email.nope }}")
    with pytest.raises(TemplateError, match=r"email template step\.txt line 2: .*nope"):
        Renderer(Clinic(), templates_dir=templates).compile(content())


def test_mjml_error_names_template_and_rendered_line(templates):
    step = templates / "step.mjml"
    step.write_text(step.read_text().replace("<h1>{{ email.title }}</h1>\n          </mj-text>", "<h1>{{ email.title }}</h1>\n          </mj-column></mj-text>"))
    with pytest.raises(TemplateError) as info:
        Renderer(Clinic(), templates_dir=templates).compile(content())
    message = str(info.value)
    assert message.startswith("email template step.mjml: MJML error")
    assert re.search(r"at line \d+ of the rendered MJML \(.+\): unexpected", message)


def test_unknown_or_unsafe_template_names(templates):
    renderer = Renderer(Clinic(), templates_dir=templates)
    with pytest.raises(TemplateError, match=r"newsletter\.mjml not found"):
        renderer.compile(content(key="n", template="newsletter"))
    with pytest.raises(TemplateError, match="not valid"):
        renderer.compile(content(key="u", template="../../etc/passwd"))


def test_a_failed_compile_is_not_cached(templates):
    renderer = Renderer(Clinic(), templates_dir=templates)
    renderer.compile(content(key="good"))
    with pytest.raises(TemplateError):
        renderer.compile(content(key="bad", template="missing"))
    assert list(renderer._cache) == ["good"]

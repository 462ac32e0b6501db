"""SendGrid's shared body + substitutions must give exactly the per-recipient render."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from campaigns.render import FIELDS, CompiledEmail, Recipient, Renderer
from drip.config import Clinic
from tests.campaigns.render_samples import content

TRICKY = st.sampled_from(["<", ">", "&", '"', "'", "&amp;", "<b>", "José", "Ødegård", "李", "🙂", " ", "-drip_",
                          "-drip_greeting_html-", "-drip_unsubscribe_url_text-", "{{", "}}", "{%", "\\", "\u2028"])
NAMES = st.lists(TRICKY | st.text(max_size=6), max_size=6).map("".join)
URLS = st.builds(
    lambda host, path, query: f"https://{host}/u/{path}?{query}",
    st.sampled_from(["clinic.test", "xn--caf-dma.example", "a.b.example:8443"]),
    st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"], include_characters="-_.~%"), max_size=20),
    st.lists(TRICKY | st.text(alphabet="abc=&;%+", max_size=5), max_size=4).map("".join),
)
RECIPIENTS = st.builds(Recipient, name=NAMES, email=st.just("p@example.com"), unsubscribe_url=URLS,
                       preferences_url=URLS | st.just(""))


def apply(shared: str, subs: dict[str, str]) -> str:
    for key, value in subs.items():  # what the provider does: plain replacement, key by key
        shared = shared.replace(key, value)
    return shared


@pytest.fixture(scope="module")
def compiled() -> CompiledEmail:
    return Renderer(Clinic()).compile(content())


@given(person=RECIPIENTS)
@hsettings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_shared_plus_substitutions_equals_render(compiled, person):
    shared = compiled.shared_content()
    subs = compiled.substitutions(person)
    rendered = compiled.render(person)
    assert apply(shared.html, subs) == rendered.html
    assert apply(shared.text, subs) == rendered.text
    assert shared.subject == rendered.subject


ARTICLE = st.lists(TRICKY | st.text(max_size=8) | st.sampled_from(["\n\n", "\n- ", "*"]), max_size=12).map("".join)


@given(body=ARTICLE, title=ARTICLE, person=RECIPIENTS)
@hsettings(max_examples=25, deadline=None)
def test_invariant_holds_for_any_article_text(body, title, person):
    compiled = Renderer(Clinic()).compile(content(key="any", body=body, title=title or "T"))
    rendered = compiled.render(person)
    subs = compiled.substitutions(person)
    assert apply(compiled.shared_content().html, subs) == rendered.html
    assert apply(compiled.shared_content().text, subs) == rendered.text


def test_keys_never_collide_with_the_article():
    article = "Our codes: -drip_greeting_html- and -drip_unsubscribe_url_text- appear in this text."
    compiled = Renderer(Clinic()).compile(content(key="collide", body=article))
    keys = [*compiled.html_keys.values(), *compiled.text_keys.values()]
    assert len(set(keys)) == 2 * len(FIELDS)
    assert "-drip_greeting_html-" not in keys
    shared = compiled.shared_content()
    for key in compiled.html_keys.values():
        assert shared.html.count(key) >= 1 and shared.text.count(key) == 0
    for key in compiled.text_keys.values():
        assert shared.text.count(key) == 1 and shared.html.count(key) == 0
    person = Recipient("Ana", "a@example.com", "https://clinic.test/u/x")
    rendered = compiled.render(person)
    assert article.split(":")[1].strip() in rendered.text  # the article's own text is untouched
    assert apply(shared.text, compiled.substitutions(person)) == rendered.text


def test_html_values_are_escaped_and_text_values_raw(compiled):
    subs = compiled.substitutions(Recipient('A<b>&"', "a@example.com", "https://c.test/u/1?a=1&b=2"))
    assert subs[compiled.html_keys["greeting"]] == "Hi A&lt;b&gt;&amp;&#34;,"
    assert subs[compiled.text_keys["greeting"]] == 'Hi A<b>&",'
    assert subs[compiled.html_keys["unsubscribe_url"]] == "https://c.test/u/1?a=1&amp;b=2"
    assert subs[compiled.text_keys["unsubscribe_url"]] == "https://c.test/u/1?a=1&b=2"


def test_shared_content_is_built_once_per_compiled_email(compiled):
    assert compiled.shared_content() is compiled.shared_content()
    assert compiled.shared_content().key == "step:1:v1"

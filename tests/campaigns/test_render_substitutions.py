"""SendGrid's shared body + substitutions must give exactly the per-recipient render."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from markupsafe import escape

from campaigns.render import CompiledEmail, Recipient, Renderer
from drip.config import Clinic
from subscribers.tokens import TokenSigner
from tests.campaigns.render_samples import content

BASE = "https://clinic.test"
TRICKY = st.sampled_from(["<", ">", "&", '"', "'", "&amp;", "<b>", "José", "Ødegård", "李", "🙂", " ", "-drip_",
                          "-drip_greeting_html-", "-drip_token-", "-drip_greeting_text-", "{{", "}}", "{%", "\\",
                          "\u2028"])
NAMES = st.lists(TRICKY | st.text(max_size=6), max_size=6).map("".join)
TOKEN_CHARS = "abcXYZ0189._~-"
KEYLIKE = ["-drip_token-", "-drip_greeting_html-", "-drip_"]
# Link tokens as a renderer substitutes them (URL-safe), including ones that spell a key.
TOKENS = st.builds(
    lambda first, rest: first + "".join(rest), st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12),
    st.lists(st.text(alphabet=TOKEN_CHARS, max_size=12) | st.sampled_from(KEYLIKE), max_size=4),
)
_LINKS = Renderer(Clinic(), base_url=BASE)
RECIPIENTS = st.builds(lambda name, token: _LINKS.recipient(name, "p@example.com", token), NAMES, TOKENS)


def apply(shared: str, subs: dict[str, str]) -> str:
    for key, value in subs.items():  # what the provider does: plain replacement, key by key
        shared = shared.replace(key, value)
    return shared


@pytest.fixture(scope="module")
def compiled() -> CompiledEmail:
    return Renderer(Clinic(), base_url=BASE).compile(content())


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


@given(body=ARTICLE, title=ARTICLE, person=RECIPIENTS, base=st.sampled_from(["", BASE, "https://a.test/x&y/"]))
@hsettings(max_examples=25, deadline=None)
def test_invariant_holds_for_any_article_text_and_base_url(body, title, person, base):
    renderer = Renderer(Clinic(), base_url=base)
    compiled = renderer.compile(content(key="any", body=body, title=title or "T"))
    person = renderer.recipient(person.name, person.email, person.unsubscribe_url.rsplit("/u/", 1)[1])
    rendered = compiled.render(person)
    subs = compiled.substitutions(person)
    assert apply(compiled.shared_content().html, subs) == rendered.html
    assert apply(compiled.shared_content().text, subs) == rendered.text


def test_a_recipient_carries_three_values_and_the_link_prefix_is_shared(compiled):
    signer = TokenSigner("test-secret-" + "k" * 32)
    token = signer.unsubscribe_token(12, 3, 456)
    person = Renderer(Clinic(), base_url=BASE + "/").recipient("Dr. Ana Diaz", "a@example.com", token)
    assert person.unsubscribe_url == f"{BASE}/u/{token}" and person.preferences_url == f"{BASE}/preferences/{token}"
    keys = compiled.keys
    subs = compiled.substitutions(person)
    assert subs == {keys.greeting_html: "Hi Ana,", keys.greeting_text: "Hi Ana,", keys.token: token}
    assert str(escape(token)) == token  # why one token key serves HTML and text alike
    shared = compiled.shared_content()
    for body in (shared.html, shared.text):
        assert f"{BASE}/u/{keys.token}" in body and f"{BASE}/preferences/{keys.token}" in body


def test_keys_never_collide_with_the_article():
    article = "Our codes: -drip_greeting_html- and -drip_token- appear in this text."
    renderer = Renderer(Clinic(), base_url=BASE)
    compiled = renderer.compile(content(key="collide", body=article))
    keys = compiled.keys.all()
    assert len(set(keys)) == 3
    assert "-drip_greeting_html-" not in keys and "-drip_token-" not in keys
    shared = compiled.shared_content()
    assert shared.html.count(compiled.keys.greeting_html) >= 1 and compiled.keys.greeting_html not in shared.text
    assert shared.text.count(compiled.keys.greeting_text) == 1 and compiled.keys.greeting_text not in shared.html
    assert shared.html.count(compiled.keys.token) == 2 and shared.text.count(compiled.keys.token) == 2
    person = renderer.recipient("Ana", "a@example.com", "x")
    rendered = compiled.render(person)
    assert article.split(":")[1].strip() in rendered.text  # the article's own text is untouched
    assert apply(shared.text, compiled.substitutions(person)) == rendered.text


def test_keys_never_collide_with_the_base_url():
    compiled = Renderer(Clinic(), base_url="https://clinic.test/-drip_token-").compile(content(key="in-base"))
    assert compiled.keys.token != "-drip_token-"


def test_greeting_is_escaped_for_html_and_raw_for_text(compiled):
    subs = compiled.substitutions(Renderer(Clinic(), base_url=BASE).recipient('A<b>&"', "a@example.com", "t0k.e-n_"))
    assert subs[compiled.keys.greeting_html] == "Hi A&lt;b&gt;&amp;&#34;,"
    assert subs[compiled.keys.greeting_text] == 'Hi A<b>&",'
    assert subs[compiled.keys.token] == "t0k.e-n_"


@pytest.mark.parametrize("unsubscribe, preferences", [
    ("https://other.test/u/tok", "https://other.test/preferences/tok"),  # another base URL
    (f"{BASE}/u/tok", f"{BASE}/preferences/other"),  # two different tokens
    (f"{BASE}/u/tok", ""),  # no preferences link
    (f"{BASE}/u/tok?c=1&d=2", f"{BASE}/preferences/tok?c=1&d=2"),  # not URL-safe: HTML would differ
    (f"{BASE}/u/", f"{BASE}/preferences/"),  # no token at all
])
def test_other_link_shapes_are_refused_for_substitutions_but_still_render(compiled, unsubscribe, preferences):
    person = Recipient("Ana", "a@example.com", unsubscribe, preferences)
    with pytest.raises(ValueError, match="Renderer.recipient"):
        compiled.substitutions(person)
    assert unsubscribe.replace("&", "&amp;") in compiled.render(person).html


def test_a_base_url_that_is_not_one_clean_line_is_refused_for_substitutions():
    renderer = Renderer(Clinic(), base_url="https://clinic.test/a\tb")
    compiled = renderer.compile(content(key="tab"))
    person = renderer.recipient("Ana", "a@example.com", "tok")
    with pytest.raises(ValueError, match="Renderer.recipient"):
        compiled.substitutions(person)
    assert "https://clinic.test/a b/u/tok" in compiled.render(person).text


def test_shared_content_is_built_once_per_compiled_email(compiled):
    assert compiled.shared_content() is compiled.shared_content()
    assert compiled.shared_content().key == "step:1:v1"


@given(name=NAMES, token=TOKENS, base=st.sampled_from(["", BASE, BASE + "/", "https://clinic.test/a\tb"]))
@hsettings(max_examples=200, deadline=None)
def test_personalize_is_substitutions_of_the_renderers_recipient(name, token, base):
    renderer = Renderer(Clinic(), base_url=base)
    compiled = renderer.compile(content(key=f"personalize:{base}"))
    person = renderer.recipient(name, "p@example.com", token)
    try:
        expected = (person.unsubscribe_url, compiled.substitutions(person))
    except ValueError as exc:
        with pytest.raises(ValueError, match="Renderer.recipient"):
            compiled.personalize(name, token)
        assert "\t" in base, exc
        return
    assert compiled.personalize(name, token) == expected


@given(value=NAMES)
def test_escape_text_is_markupsafe_escape(value):
    from campaigns.render import escape_text

    assert escape_text(value) == str(escape(value))

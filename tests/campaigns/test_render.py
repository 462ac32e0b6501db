"""The renderer: what every email must contain, escaping, caching, and the seed's sizes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from campaigns.draft import Draft
from campaigns.render import (
    GMAIL_CLIP_BYTES,
    Renderer,
    body_text,
    content_from_draft,
    derive_preheader,
    first_name,
    one_line,
)
from campaigns.theme import DEFAULT_BRAND, contrast, theme_for
from drip.config import Clinic
from tests.campaigns.render_samples import content, draft, recipient

CLINIC = Clinic()


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(CLINIC, base_url="https://clinic.test")


def visible_text(html: str) -> str:
    tree = HTMLParser(html)
    for node in tree.css("style, title"):
        node.decompose()
    for node in tree.css("div[style]"):
        if "display:none" in node.attributes["style"].replace(" ", ""):
            node.decompose()  # the hidden preheader
    return " ".join(tree.body.text(separator=" ").split())


def test_every_email_has_the_required_parts(renderer):
    out = renderer.render(content(), recipient())
    tree = HTMLParser(out.html)
    text = visible_text(out.html)

    # hidden preheader: the first thing in the body, invisible
    pre = tree.body.css_first("div")
    assert "display:none" in pre.attributes["style"].replace(" ", "")
    assert pre.text().startswith("The body's own painkillers, explained.")
    assert out.preheader == "The body's own painkillers, explained."
    # clinic header, postal address (CAN-SPAM), why you receive this
    assert text.startswith(CLINIC.name)
    assert CLINIC.address in text
    assert f"You receive this email because you signed up at {CLINIC.name}" in text
    # unsubscribe + preferences links carry this recipient's URLs
    links = {a.text(strip=True): a.attributes["href"] for a in tree.css("a")}
    assert links["Unsubscribe"] == "https://clinic.test/u/tok123.sig?c=1&d=2"
    assert links["Email preferences"] == "https://clinic.test/preferences/tok123.sig"
    # progress, eyebrow, title, greeting, body
    assert "Step 3 of 13" in text and "How Acupuncture Works" in text
    assert tree.css_first("h1").text(strip=True) == "Release of Endorphins"
    assert "Hi Maria," in text
    assert [" ".join(li.text().split()) for li in tree.css("ul li")] == ["Reduces pain", "Promotes a sense of well-being"]
    assert tree.css_first("em").text() == "well-being"
    assert "<title>How acupuncture releases endorphins</title>" in out.html

    # the plain-text part carries the same essentials
    for needle in (CLINIC.name, CLINIC.address, "Hi Maria,", "Step 3 of 13 · How Acupuncture Works",
                   "Release of Endorphins", "- Reduces pain", "- Promotes a sense of *well-being*",
                   "Unsubscribe: https://clinic.test/u/tok123.sig?c=1&d=2",
                   "Email preferences: https://clinic.test/preferences/tok123.sig",
                   f"You receive this email because you signed up at {CLINIC.name}"):
        assert needle in out.text, needle


def test_css_is_inlined_and_no_remote_resources(renderer):
    html = renderer.render(content(), recipient()).html
    tree = HTMLParser(html)
    body_p = [p for p in tree.css("p") if "Research published" in p.text()][0]
    assert "margin: 0 0 16px" in body_p.attributes["style"]  # from <mj-style inline="inline">
    assert "@media only screen and (max-width: 480px)" in html  # responsive rules stay in <head>
    assert "fonts.googleapis" not in html and "@import" not in html and "<link" not in html
    assert not re.search(r"""src=["']https?://""", html)  # no remote images without a logo


def test_greeting_uses_first_name_or_hello(renderer):
    compiled = renderer.compile(content())
    assert "Hi Maria," in compiled.render(recipient(name="  Maria\tLopez ")).text
    assert "Hi Aiko," in compiled.render(recipient(name="Dr. Aiko Tanaka")).text
    for empty in ("", "   ", "\r\n"):
        text = compiled.render(recipient(name=empty)).text
        assert "\nHello,\n" in text and "Hi " not in text


def test_subject_is_not_personalised_and_one_line(renderer):
    compiled = renderer.compile(content(key="s:1", subject="Endorphins\r\nBcc: x@evil.test", preheader="a\nb\u2028c"))
    a = compiled.render(recipient(name="Maria"))
    b = compiled.render(recipient(name="Ana"))
    assert a.subject == b.subject == "Endorphins Bcc: x@evil.test"
    assert a.preheader == "a b c"
    assert "Maria" not in a.subject


def test_missing_preheader_is_derived_from_the_body(renderer):
    out = renderer.render(content(key="p:1", preheader=""), recipient())
    assert out.preheader == "Acupuncture triggers the release of endorphins, the body's natural painkillers."
    assert derive_preheader("- " + "word " * 100).endswith("…")


def test_broadcast_has_no_progress_but_keeps_footer(renderer):
    out = renderer.render(content(key="broadcast:1", kind="broadcast", position=0, total=0, section=""), recipient())
    text = visible_text(out.html)
    assert "Step " not in text
    assert "for its newsletter" in text and CLINIC.address in text


def test_script_in_title_body_section_and_name_is_escaped(renderer):
    evil = "<script>alert(1)</script>"
    out = renderer.render(
        content(key="x:1", title=f"T {evil}", body=f"Para {evil} & more", section=f"S {evil}"),
        recipient(name=f"{evil} Maria"),
    )
    assert "<script" not in out.html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out.html
    # the text part is text: shown as written, nothing to escape
    assert f"Para {evil} & more" in out.text


def test_html_in_the_name_is_escaped_in_the_greeting(renderer):
    out = renderer.render(content(), recipient(name='<b>"Ann"</b>&Co'))
    assert "Hi &lt;b&gt;&#34;Ann&#34;&lt;/b&gt;&amp;Co," in out.html
    assert "Hi <b>\"Ann\"</b>&Co," in out.text


def test_jinja_syntax_in_article_or_name_stays_literal(renderer):
    body = "Dose {{ 7*7 }} and {% for x in range(3) %}loop{% endfor %} {# c #} {{ config }}"
    out = renderer.render(
        content(key="ssti:1", body=body, title="{{ 6*6 }}", subject="{{ 5*5 }} {%", preheader="{# x #} {{"),
        recipient(name="{{7*7}}"),
    )
    assert (out.subject, out.preheader) == ("{{ 5*5 }} {%", "{# x #} {{")
    assert "<title>{{ 5*5 }} {%</title>" in out.html and "{# x #} {{" in out.html
    for part in (out.html, out.text):
        assert "{{ 7*7 }}" in part and "{% for x in range(3) %}loop{% endfor %}" in part
        assert "{{ 6*6 }}" in part and "{{7*7}}" in part
        assert "Dose 49" not in part and "36" not in visible_text(out.html) and "looploop" not in part


def test_text_part_has_no_carriage_returns(renderer):
    out = renderer.render(content(key="crlf:1", body="One\r\ntwo\r\n\r\n- three\rfour"), recipient(name="A\rB"))
    assert "\r" not in out.text and "\r" not in out.html
    assert "One\ntwo\n\n- three\nfour" in out.text


def test_control_characters_in_the_article_are_dropped(renderer):
    # MJML's parser rejects C0 control characters; one pasted ESC must not stop a campaign.
    out = renderer.render(content(key="ctl:1", body="Calm\x1b breathing\x00 helps.", title="Rest\x07"), recipient())
    assert "Calm breathing helps." in out.text and "Rest" in out.text
    assert not any(ch in out.html + out.text for ch in "\x00\x07\x1b")


def test_compile_is_cached_by_key_with_a_bounded_lru():
    r = Renderer(CLINIC, cache_size=2)
    a = r.compile(content(key="a"))
    assert r.compile(content(key="a")) is a
    r.compile(content(key="b"))
    r.compile(content(key="a"))  # touch a: b is now the oldest
    r.compile(content(key="c"))
    assert r.compile(content(key="a")) is a
    b_again = r.compile(content(key="b"))
    assert b_again.key == "b" and len(r._cache) == 2


def test_new_key_picks_up_edited_content():
    r = Renderer(CLINIC)
    assert "Old title" in r.render(content(key="step:1:v1", title="Old title"), recipient()).text
    assert "New title" in r.render(content(key="step:1:v2", title="New title"), recipient()).text


def test_fast_path_matches_full_render_per_recipient(renderer):
    c = content(key="eq:1")
    for person in (recipient(), recipient(name="O'Neil & <Sons> \"Co\""), recipient(name="", preferences_url="")):
        fast = renderer.render(c, person)
        slow = renderer.render_direct(c, person)
        assert fast.text == slow.text
        assert (fast.subject, fast.preheader) == (slow.subject, slow.preheader)
        assert visible_text(fast.html) == visible_text(slow.html)
        hrefs = lambda h: [a.attributes.get("href") for a in HTMLParser(h).css("a")]  # noqa: E731
        assert hrefs(fast.html) == hrefs(slow.html)


def test_preferences_link_falls_back_to_the_unsubscribe_page(renderer):
    out = renderer.render(content(), recipient(preferences_url=""))
    assert "Email preferences: https://clinic.test/u/tok123.sig?c=1&d=2" in out.text


def test_brand_colour_and_logo():
    r = Renderer(Clinic(brand_color="#7a3e9d", logo_url="/static/logo.png"), base_url="https://clinic.test/")
    out = r.render(content(), recipient())
    assert "#7a3e9d" in out.html
    img = HTMLParser(out.html).css_first("img")
    assert img.attributes["src"] == "https://clinic.test/static/logo.png"
    assert img.attributes["alt"] == CLINIC.name
    bad = Renderer(Clinic(brand_color="not-a-colour", logo_url="javascript:alert(1)")).render(content(), recipient())
    assert DEFAULT_BRAND in bad.html and "javascript:" not in bad.html and "<img" not in bad.html


@given(st.from_regex(r"#[0-9a-fA-F]{6}", fullmatch=True) | st.from_regex(r"#[0-9a-fA-F]{3}", fullmatch=True))
def test_theme_small_text_is_always_readable(color):
    theme = theme_for(color)
    assert contrast(theme.accent, "#ffffff") >= 4.5
    assert contrast(theme.muted, theme.page) >= 4.5
    assert contrast(theme.on_brand, theme.brand) >= 3  # button text (large, bold)


@given(st.text())
def test_first_name_is_one_clean_word(name):
    first = first_name(name)
    assert len(first) <= 40 and not any(ch.isspace() or ch in "\x00\x1b\x7f" for ch in first)
    assert "\n" not in one_line(name) and "\r" not in one_line(name)


@given(st.lists(st.sampled_from(["a", " ", "\n", "\r", "- ", "\r\n", "\t"]), max_size=30).map("".join))
@hsettings(max_examples=60)
def test_body_text_normalises_newlines(body):
    out = body_text(body)
    assert "\r" not in out and "\n\n\n" not in out and out == out.strip()


def test_content_from_draft_numbers_steps_and_keys_by_content():
    d = draft()
    c = content_from_draft(d, 1)
    assert (c.position, c.total, c.kind, c.title) == (2, 4, "item", "Release of Endorphins")
    assert c.campaign_title == d.title and c.key.startswith("draft:1:")
    changed = Draft(d.title, [d.steps[0], d.steps[1].__class__(**{**d.steps[1].__dict__, "text": "x"}), *d.steps[2:]])
    assert content_from_draft(changed, 1).key != c.key


def test_every_seed_step_renders_under_gmail_clipping(seed_path, renderer):
    split = pytest.importorskip("campaigns.split")
    d = split.split_file(seed_path)
    assert len(d.items) >= 10
    for i, step in enumerate(d.steps):
        out = renderer.render(content_from_draft(d, i), recipient())
        assert len(out.html.encode("utf-8")) < GMAIL_CLIP_BYTES
        assert step.title in out.text
        assert CLINIC.address in out.text and "Unsubscribe: " in out.text
        assert "\r" not in out.subject + out.preheader and "\n" not in out.subject + out.preheader

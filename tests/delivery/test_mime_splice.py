"""The shared body encoded once and spliced per recipient gives the bytes `_body` gives for the
substituted text: for any template, values and starting columns (hypothesis), and for the seed's
real emails through `build_message`."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from hypothesis import given, settings as hsettings, strategies as st

from bench.render import load_draft
from campaigns.render import Renderer, content_from_draft
from delivery import mime
from delivery.mime import _body, _Spliced, _shared_body, build_message
from delivery.types import OutgoingMessage
from drip.config import Clinic

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)

KEYS = ("-drip_greeting_html-", "-drip_token-")
# Text that stresses the encoder: spaces and tabs at piece ends, dots, "=", non-ASCII, long runs.
_alphabet = st.sampled_from(list("ab .=\t\nxyzé—…\u200c") + ["\n\n", "a" * 70, " " * 3, "€uro"])
_text = st.lists(_alphabet, max_size=60).map("".join)


def _substitute(template: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        template = template.replace(k, v)
    return template


@hsettings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(st.tuples(_text, st.sampled_from(KEYS)), max_size=4),
    tail=_text,
    greeting=st.text(max_size=40),
    token=st.text(max_size=60),
)
def test_splice_equals_encoding_the_substituted_text(pieces, tail, greeting, token):
    template = "".join(a + k for a, k in pieces) + tail
    values = {KEYS[0]: greeting, KEYS[1]: token}
    expected = _body(_substitute(template, values))
    assert _shared_body(f"h{hash(template)}", "html", template, values) == expected
    spliced = _Spliced(template, KEYS)
    got = spliced.body(values) if spliced.ok else None
    if got is not None:  # None: the caller falls back to _body (line ends or NUL at a boundary)
        assert got == expected


def test_splice_really_takes_the_fast_path_for_a_real_email():
    """A guard for the speed claim: the seed's email is spliced, not handed back to _body."""
    compiled, token = _seed_compiled(2)
    shared = compiled.shared_content()
    _, subs = compiled.personalize("José Álvarez", token)
    for part, template in (("html", shared.html), ("text", shared.text)):
        spliced = _Spliced(template, tuple(k for k in subs if k in template))
        assert spliced.ok and spliced.body(subs) == _body(_substitute(template, subs)), part


def _seed_compiled(index: int):
    draft, _ = load_draft()
    renderer = Renderer(Clinic(), "https://clinic.example")
    return renderer.compile(content_from_draft(draft, index)), "tok12345abcdef"


def test_seed_emails_build_the_same_bytes_shared_or_rendered(monkeypatch):
    monkeypatch.setattr(mime.secrets, "token_hex", lambda n=16: "0" * (2 * n))
    draft, _ = load_draft()
    renderer = Renderer(Clinic(), "https://clinic.example")
    names = ["José Álvarez", "", "Dr. Aiko Tanaka-Watanabe of the Harbor Street Clinic", "Li", "Sam <Sammy> Reed"]
    for index in range(len(draft.steps)):
        compiled = renderer.compile(content_from_draft(draft, index))
        for n, name in enumerate(names):
            token = f"tok{index:03d}{n:02d}abcdef"
            rendered = compiled.render(renderer.recipient(name, "p@example.org", token))
            unsubscribe, subs = compiled.personalize(name, token)
            base = OutgoingMessage(
                7, "p@example.org", name, rendered.subject, rendered.html, rendered.text,
                "care@clinic.example", "Clinic", "", unsubscribe,
            )
            shared = replace(base, html="", text="", shared=compiled.shared_content(), substitutions=subs)
            # one clock for both: the Date header would differ when a second boundary falls between
            a = build_message(base, domain="clinic.example", now=NOW).raw
            b = build_message(shared, domain="clinic.example", now=NOW).raw
            assert a == b, (index, name)

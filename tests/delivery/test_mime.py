"""The MIME builder: structure, headers, encodings, and no header injection from any text.

Every check parses the built bytes back with the stdlib parser (policy.default), the same way a
receiving client would, instead of comparing strings.
"""

from __future__ import annotations

import base64
import email.header
import email.utils
import re
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from drip.errors import ConfigurationError, PermanentSendError
from delivery import mime as mime_module
from delivery.mime import (
    UnsafeHeaderError,
    build_message,
    build_mime,
    check_address,
    clean_display_name,
    clean_header_text,
    domain_of,
)
from delivery.types import OutgoingMessage

DOMAIN = "riverside-clinic.example"
HEADERS = {
    "from", "to", "reply-to", "subject", "date", "message-id", "mime-version",
    "list-unsubscribe", "list-unsubscribe-post", "x-drip-delivery-id", "content-type",
}


def make(**changes) -> OutgoingMessage:
    values = dict(
        delivery_id=42,
        to_email="ana@example.org",
        to_name="Ana Perez",
        subject="Release of Endorphins",
        html="<html><body><p>Hello <b>Ana</b></p></body></html>",
        text="Hello Ana\n\nUnsubscribe: https://clinic.test/u/tok\n",
        from_email="care@riverside-clinic.example",
        from_name="Riverside Acupuncture",
        reply_to="frontdesk@riverside-clinic.example",
        unsubscribe_url="https://clinic.test/u/abc.DEF-123_x",
    )
    values.update(changes)
    return OutgoingMessage(**values)


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def parts(parsed: EmailMessage) -> list[EmailMessage]:
    return list(parsed.iter_parts())


def content(part: EmailMessage) -> str:
    """The decoded text; the stdlib parser keeps the CRLF line ends of SMTP-form bytes."""
    return part.get_content().replace("\r\n", "\n")


def test_multipart_alternative_text_then_html():
    parsed = parse(build_mime(make(), domain=DOMAIN))
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parts(parsed)
    assert plain.get_content_type() == "text/plain" and plain.get_content_charset() == "utf-8"
    assert html.get_content_type() == "text/html" and html.get_content_charset() == "utf-8"
    assert content(plain) == "Hello Ana\n\nUnsubscribe: https://clinic.test/u/tok\n"
    assert content(html) == "<html><body><p>Hello <b>Ana</b></p></body></html>\n"
    assert not parsed.defects and not plain.defects and not html.defects


def test_headers_are_exactly_the_expected_set():
    when = datetime(2026, 3, 8, 14, 30, tzinfo=timezone.utc)
    built = build_message(make(), domain=DOMAIN, now=when)
    parsed = parse(built.raw)
    assert {k.lower() for k in parsed.keys()} == HEADERS
    assert len(parsed.keys()) == len(HEADERS)  # no header twice
    assert parsed["From"].addresses[0].display_name == "Riverside Acupuncture"
    assert parsed["From"].addresses[0].addr_spec == "care@riverside-clinic.example"
    assert parsed["To"].addresses[0].display_name == "Ana Perez"
    assert parsed["To"].addresses[0].addr_spec == "ana@example.org"
    assert parsed["Reply-To"].addresses[0].addr_spec == "frontdesk@riverside-clinic.example"
    assert parsed["Subject"] == "Release of Endorphins"
    assert parsed["Date"].datetime == when
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["X-Drip-Delivery-Id"] == "42"
    assert parsed["Message-ID"] == built.message_id
    assert built.sender == "care@riverside-clinic.example" and built.recipient == "ana@example.org"


def test_list_unsubscribe_one_click_headers():
    parsed = parse(build_mime(make(), domain=DOMAIN))
    assert parsed["List-Unsubscribe"] == "<https://clinic.test/u/abc.DEF-123_x>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_long_unsubscribe_url_round_trips_within_the_line_limit():
    url = "https://clinic.test/u/" + "a" * 300
    raw = build_mime(make(unsubscribe_url=url), domain=DOMAIN)
    assert parse(raw)["List-Unsubscribe"] == f"<{url}>"
    assert max(len(line) for line in raw.split(b"\r\n")) < 998


def test_no_unsubscribe_url_means_no_list_headers_and_no_reply_to_when_empty():
    # e.g. the double opt-in confirmation, which is not list mail
    parsed = parse(build_mime(make(unsubscribe_url="", reply_to=""), domain=DOMAIN))
    assert {k.lower() for k in parsed.keys()} == HEADERS - {"list-unsubscribe", "list-unsubscribe-post", "reply-to"}


def test_date_is_now_when_not_given():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    parsed = parse(build_mime(make(), domain=DOMAIN))
    assert before <= parsed["Date"].datetime <= datetime.now(timezone.utc)
    assert parsed["Date"].datetime.utcoffset().total_seconds() == 0


def test_message_id_is_unique_per_build_and_names_the_delivery():
    ids = {build_message(make(), domain=DOMAIN).message_id for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"<drip\.42\.[0-9a-f]{16}@riverside-clinic\.example>", i) for i in ids)


def test_message_id_can_be_reused_on_request():
    built = build_message(make(), domain=DOMAIN, message_id="<drip.42.0123456789abcdef@riverside-clinic.example>")
    assert parse(built.raw)["Message-ID"] == "<drip.42.0123456789abcdef@riverside-clinic.example>"
    with pytest.raises(UnsafeHeaderError):
        build_message(make(), domain=DOMAIN, message_id="<a@b>\r\nBcc: x@evil.example")


def test_utf8_subject_and_names_are_rfc2047_and_headers_stay_ascii():
    msg = make(subject="Acupuntura — alivio del dolor ☯ 針灸", to_name="José Ñúñez", from_name="Clínica Río")
    raw = build_mime(msg, domain=DOMAIN)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?b?" in head
    parsed = parse(raw)
    assert parsed["Subject"] == "Acupuntura — alivio del dolor ☯ 針灸"
    assert parsed["To"].addresses[0].display_name == "José Ñúñez"
    assert parsed["From"].addresses[0].display_name == "Clínica Río"


def test_ascii_text_that_looks_like_an_encoded_word_is_not_decoded():
    parsed = parse(build_mime(make(subject="=?utf-8?q?boom?=", to_name="=?utf-8?q?x?="), domain=DOMAIN))
    assert parsed["Subject"] == "=?utf-8?q?boom?="
    assert parsed["To"].addresses[0].display_name == "=?utf-8?q?x?="


def test_long_ascii_subject_is_folded_at_spaces():
    subject = " ".join(["acupuncture"] * 30)
    raw = build_mime(make(subject=subject), domain=DOMAIN)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8" not in head  # stays readable
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert parse(raw)["Subject"] == subject


def test_long_utf8_name_is_split_into_short_words_between_its_words():
    name = "Ana María de los Ángeles Fernández-García y Hernández"
    raw = build_mime(make(to_name=name), domain=DOMAIN)
    to_lines = raw.split(b"\r\nReply-To:")[0].split(b"\r\nTo: ")[1].split(b"\r\n ")
    assert len(to_lines) == 3 and all(len(w) <= 75 for w in to_lines[:-1])
    assert rfc2047_display_name(email.message_from_bytes(raw)["To"]) == name


def test_names_with_specials_are_quoted():
    parsed = parse(build_mime(make(to_name='Perez, "Ana" <admin@x> \\ Jr.'), domain=DOMAIN))
    assert parsed["To"].addresses[0].display_name == 'Perez, "Ana" <admin@x> \\ Jr.'
    assert parsed["To"].addresses[0].addr_spec == "ana@example.org"
    assert len(parsed["To"].addresses) == 1


def test_no_name_gives_a_bare_address():
    parsed = parse(build_mime(make(to_name="  \r\n "), domain=DOMAIN))
    assert parsed["To"].addresses[0].display_name == ""
    assert parsed["To"].addresses[0].addr_spec == "ana@example.org"


def test_crlf_in_subject_and_name_is_collapsed_not_injected():
    msg = make(subject="Hi\r\nBcc: victim@evil.example", to_name="Ana\nX-Evil: 1", from_name="Clinic\u2028Bcc: x@y")
    parsed = parse(build_mime(msg, domain=DOMAIN))
    assert {k.lower() for k in parsed.keys()} == HEADERS
    assert parsed["Subject"] == "Hi Bcc: victim@evil.example"
    assert parsed["To"].addresses[0].display_name == "Ana X-Evil: 1"
    assert parsed["From"].addresses[0].display_name == "Clinic Bcc: x@y"


def test_clean_header_text():
    assert clean_header_text("a\r\n\tb\x00\x85c\u2029d  e ") == "a b c d  e"
    assert clean_header_text("\n\n") == ""
    assert clean_display_name(" Ana \u00a0\r\n  Perez\t") == "Ana Perez"


@pytest.mark.parametrize("field,value", [
    ("to_email", "ana@example.org\r\nBcc: x@evil.example"),
    ("to_email", "ana@example.org>, <x@evil.example"),
    ("to_email", "not-an-address"),
    ("to_email", "ana @example.org"),
    ("to_email", "añа@example.org"),  # non-ASCII local part (SMTPUTF8) is refused
    ("from_email", "care@riverside\n.example"),
    ("reply_to", "front desk@riverside-clinic.example"),
    ("unsubscribe_url", "https://clinic.test/u/x\r\nBcc: x@evil.example"),
    ("unsubscribe_url", "https://clinic.test/u/x>, <mailto:x@evil.example"),
    ("unsubscribe_url", "javascript:alert(1)"),
    ("unsubscribe_url", "https://clinic.test/u/ü"),
])
def test_unsafe_machine_values_are_refused_as_permanent(field, value):
    with pytest.raises(UnsafeHeaderError, match=field) as info:
        build_mime(make(**{field: value}), domain=DOMAIN)
    assert isinstance(info.value, PermanentSendError) and not info.value.transient


def test_idn_domain_is_idna_encoded():
    assert check_address("ana@bücher.example", "to_email") == "ana@xn--bcher-kva.example"
    parsed = parse(build_mime(make(to_email="ana@bücher.example"), domain=DOMAIN))
    assert parsed["To"].addresses[0].addr_spec == "ana@xn--bcher-kva.example"


def test_bad_message_id_domain_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        build_mime(make(), domain="bad domain\r\n")
    assert domain_of("care@riverside-clinic.example") == "riverside-clinic.example"


@pytest.mark.parametrize("body,encoding", [
    ("plain ascii\nlines\n", "7bit"),
    ("x" * 998 + "\n" + "y" * 998, "7bit"),  # RFC 5322 limit: 998 bytes + CRLF
    ("short\n" * 200 + "x" * 999 + "\nend\n", "quoted-printable"),  # one ASCII line too long for 7bit
    ("Acupuncture eases pain — naturally, for José. " * 20, "quoted-printable"),  # mostly ASCII
    ("Βελονισμός για τον πόνο " * 20, "base64"),  # mostly non-ASCII
    ("針灸治療 " * 50, "base64"),
])
def test_body_transfer_encoding_is_chosen_by_content(body, encoding):
    raw = build_mime(make(text=body, html=body), domain=DOMAIN)
    plain, html = parts(parse(raw))
    assert plain["Content-Transfer-Encoding"] == encoding
    assert content(plain) == body if body.endswith("\n") else body + "\n"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert raw.isascii()


def test_line_ends_are_crlf_everywhere():
    raw = build_mime(make(text="a\nb\r\nc\rd", html="é\n" * 200), domain=DOMAIN)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert content(parts(parse(raw))[0]) == "a\nb\nc\nd\n"


def test_stdlib_compat32_parser_reads_it_too():
    raw = build_mime(make(subject="Ça va — 針", to_name="José"), domain=DOMAIN)
    legacy = email.message_from_bytes(raw)  # compat32, what many tools still use
    assert str(email.header.make_header(email.header.decode_header(legacy["Subject"]))) == "Ça va — 針"
    assert [p.get_content_type() for p in legacy.get_payload()] == ["text/plain", "text/html"]
    html = legacy.get_payload()[1].get_payload(decode=True).decode("utf-8")
    assert html == "<html><body><p>Hello <b>Ana</b></p></body></html>\r\n"


def rfc2047_display_name(raw_value: str) -> str:
    """The display name as an RFC 2047 reader sees it (adjacent encoded words joined)."""
    phrase = raw_value.rpartition("<")[0].strip()
    if phrase.startswith('"'):
        return email.utils.unquote(phrase)
    return str(email.header.make_header(email.header.decode_header(phrase)))


header_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=header_text, to_name=header_text, from_name=header_text)
def test_any_text_never_injects_a_header_and_round_trips(subject, to_name, from_name):
    raw = build_mime(make(subject=subject, to_name=to_name, from_name=from_name), domain=DOMAIN)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    for word in re.findall(rb"=\?utf-8\?b\?[^?]*\?=", head):
        assert len(word) <= 75  # RFC 2047, and each word decodes alone (no split character)
        base64.b64decode(word[10:-2]).decode("utf-8")
    parsed = parse(raw)
    legacy = email.message_from_bytes(raw)
    assert {k.lower() for k in parsed.keys()} == HEADERS
    assert len(parsed.keys()) == len(HEADERS)
    assert parsed["Subject"] == clean_header_text(subject)
    for field, name, addr in (("To", to_name, "ana@example.org"), ("From", from_name, "care@riverside-clinic.example")):
        (address,) = parsed[field].addresses
        expected = clean_display_name(name)
        assert rfc2047_display_name(legacy[field]) == expected
        # policy.default puts a space between adjacent encoded words in a name (RFC 2047
        # says to drop it), so against it only the non-space characters must match.
        assert address.display_name.replace(" ", "") == expected.replace(" ", "")
        assert address.addr_spec == addr
        assert not parsed[field].defects
    assert not parsed["Subject"].defects


@hsettings(max_examples=150, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=3000))
def test_any_body_round_trips(text):
    plain, html = parts(parse(build_mime(make(text=text, html=text), domain=DOMAIN)))
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    expected += "" if expected.endswith("\n") else "\n"
    for part in (plain, html):
        assert part.get_payload(decode=True).decode("utf-8").replace("\r\n", "\n") == expected


def test_boundary_is_changed_when_a_7bit_body_contains_it(monkeypatch):
    tokens = iter(["a" * 32, "b" * 16])
    monkeypatch.setattr(mime_module.secrets, "token_hex", lambda n: next(tokens))
    body = "quoting a boundary:\n--=_drip_" + "a" * 16 + "\n"
    raw = build_mime(make(text=body), domain=DOMAIN)
    parsed = parse(raw)
    assert parsed.get_boundary() == "=_drip_" + "b" * 16
    plain, html = parts(parsed)
    assert content(plain) == body

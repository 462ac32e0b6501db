"""The SendGrid request body, offline: exact JSON, limits, sanitising, order."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from delivery.backends.sendgrid_payload import (
    MAX_SUBSTITUTION_BYTES,
    build_payload,
    recipient_name,
    request_key,
    substitutions_size,
)
from tests.delivery.sendgrid_mock import SHARED, message

TRACKING_OFF = {
    "click_tracking": {"enable": False, "enable_text": False},
    "open_tracking": {"enable": False},
    "subscription_tracking": {"enable": False},
}


def _headers_of(body: dict) -> list[str]:
    """Every value that ends up in a mail header."""
    values = [body["subject"], body["from"].get("name", ""), body["from"]["email"], *body["headers"].values()]
    for p in body["personalizations"]:
        values += [t.get("name", "") for t in p["to"]] + [t["email"] for t in p["to"]]
        values += list(p["headers"].values())
    return values


def test_exact_body_for_a_step_sent_to_two_patients():
    payload = build_payload([message(1), message(2, name="Zoë O'Brien \"Zo\"")])
    assert payload.rejected == ()
    assert payload.body == {
        "personalizations": [
            {
                "to": [{"email": "patient1@example.com", "name": "Patient 1"}],
                "substitutions": {"-name-": "Patient 1", "-unsubscribe-": "https://clinic.test/u/token-1"},
                "custom_args": {"delivery_id": "1001"},
                "headers": {"List-Unsubscribe": "<https://clinic.test/u/token-1>"},
            },
            {
                "to": [{"email": "patient2@example.com", "name": "Zoë O'Brien \"Zo\""}],
                "substitutions": {"-name-": "Zoë O'Brien \"Zo\"", "-unsubscribe-": "https://clinic.test/u/token-2"},
                "custom_args": {"delivery_id": "1002"},
                "headers": {"List-Unsubscribe": "<https://clinic.test/u/token-2>"},
            },
        ],
        "from": {"email": "care@riverside-clinic.example", "name": "Riverside Acupuncture"},
        "reply_to": {"email": "frontdesk@riverside-clinic.example"},
        "subject": "How acupuncture eases muscle spasm",
        "content": [
            {"type": "text/plain", "value": SHARED.text},
            {"type": "text/html", "value": SHARED.html},
        ],
        # RFC 8058: the same for everyone, so once; SendGrid merges it with each recipient's headers
        "headers": {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        "categories": ["c3", "c3:s8"],
        "tracking_settings": TRACKING_OFF,
    }
    assert [m.delivery_id for m in payload.messages] == [1001, 1002]
    json.dumps(payload.body)  # plain JSON, nothing the encoder cannot handle


def test_tracking_only_when_the_setting_says_so():
    body = build_payload([message(1)], tracking=True).body
    assert body["tracking_settings"] == {
        "click_tracking": {"enable": True, "enable_text": True},
        "open_tracking": {"enable": True},
        "subscription_tracking": {"enable": False},
    }


def test_text_plain_comes_before_html_and_empty_parts_are_left_out():
    body = build_payload([message(1)]).body
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    html_only = replace(SHARED, text="")
    body = build_payload([message(1, html_only)]).body
    assert body["content"] == [{"type": "text/html", "value": SHARED.html}]


def test_a_message_without_shared_content_carries_its_own_body_and_subject():
    payload = build_payload([message(5, shared=None)])
    body = payload.body
    assert body["subject"] == "One-off 5"
    assert body["content"] == [
        {"type": "text/plain", "value": "Hello Patient 5"},
        {"type": "text/html", "value": "<p>Hello Patient 5</p>"},
    ]
    assert "substitutions" not in body["personalizations"][0]
    with pytest.raises(ValueError):
        build_payload([message(5, shared=None), message(6, shared=None)])


def test_substitutions_over_10000_bytes_fail_that_message_only():
    # 'é' is two bytes in UTF-8: the limit counts bytes, not characters.
    key = "-bio-"
    fits = "é" * 4997 + "a"  # 5 + 9,995 = exactly 10,000 bytes (4,998 characters)
    over = fits + "é"  # 10,002 bytes
    ok = message(1, substitutions={key: fits})
    big = message(2, substitutions={key: over})
    assert substitutions_size({key: fits}) == MAX_SUBSTITUTION_BYTES
    assert substitutions_size({key: over}) == 10_002
    payload = build_payload([ok, big, message(3)])
    assert [m.delivery_id for m in payload.messages] == [1001, 1003]
    assert len(payload.body["personalizations"]) == 2
    (rejection,) = payload.rejected
    assert rejection.message is big
    assert "10,000 bytes" in rejection.reason and "10,002" in rejection.reason


def test_no_cr_or_lf_reaches_a_header_value():
    evil_shared = replace(SHARED, subject="Hello\r\nBcc: victim@example.com")
    m = message(1, evil_shared, name="Eve\r\nBcc: x@example.com", from_name="Clinic\nX-Evil: 1")
    body = build_payload([m]).body
    for value in _headers_of(body):
        assert "\r" not in value and "\n" not in value
    assert body["subject"] == "Hello Bcc: victim@example.com"
    assert body["from"]["name"] == "Clinic X-Evil: 1"


def test_names_with_comma_or_semicolon_are_quoted_for_sendgrid():
    assert recipient_name("Smith, John") == '"Smith, John"'
    assert recipient_name('Dr. "Doc"; MD') == '"Dr. \\"Doc\\"; MD"'
    assert recipient_name("Zoë O'Brien") == "Zoë O'Brien"
    body = build_payload([message(1, name="Smith, John")]).body
    assert body["personalizations"][0]["to"] == [{"email": "patient1@example.com", "name": '"Smith, John"'}]


def test_recipient_without_a_name_has_no_name_field():
    body = build_payload([message(1, name="")]).body
    assert body["personalizations"][0]["to"] == [{"email": "patient1@example.com"}]


@pytest.mark.parametrize(
    "categories, fragment",
    [
        (("c1", "jane@example.com"), "not an opaque id"),
        (("Diabetes Type 2",), "not an opaque id"),
        (("acupuncture-pain-relief",), "not an opaque id"),  # a slug hints at the treatment
        (("c1:acupuncture",), "not an opaque id"),
        (tuple(f"c{i}" for i in range(11)), "at most 10"),
    ],
)
def test_categories_must_be_at_most_ten_opaque_ids(categories, fragment):
    payload = build_payload([message(1, categories=categories), message(2, categories=categories)])
    assert payload.body is None
    assert len(payload.rejected) == 2
    assert all(fragment in r.reason for r in payload.rejected)


def test_a_bad_category_is_not_echoed_in_the_error():
    (rejection,) = build_payload([message(1, categories=("c1", "jane@example.com"))]).rejected
    assert "category 2 of 2" in rejection.reason and "jane" not in rejection.reason


def test_substitution_values_are_sent_as_strings():
    body = build_payload([message(1, substitutions={"-n-": 5})]).body  # SendGrid rejects non-strings
    assert body["personalizations"][0]["substitutions"] == {"-n-": "5"}


def test_checks_hold_for_later_recipients_whose_keys_were_already_seen():
    """After the first recipient, known keys take a shortcut; a non-string value, an oversized
    value or a new key must still be caught for the recipients after it."""
    first = message(1, substitutions={"-n-": "Ann"})
    number = message(2, substitutions={"-n-": 7})
    huge = message(3, substitutions={"-n-": "x" * 10_000})
    in_subject = message(4, substitutions={"-n-": "Bo", SHARED.subject[:5]: "x"})
    payload = build_payload([first, number, huge, in_subject, message(5, substitutions={"-n-": "Cy"})])
    assert [p.get("substitutions") for p in payload.body["personalizations"]] == [
        {"-n-": "Ann"}, {"-n-": "7"}, {"-n-": "Cy"}]
    assert [(r.message.delivery_id, r.reason.split(" ")[0]) for r in payload.rejected] == [
        (1003, "substitutions"), (1004, "the")]


def test_duplicate_categories_are_sent_once():
    body = build_payload([message(1, categories=("c1", "c1:s2", "c1"))]).body
    assert body["categories"] == ["c1", "c1:s2"]


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"to_email": "not-an-address"}, "recipient address"),
        ({"to_email": "a@example.com\r\nBcc: b@example.com"}, "recipient address"),
        ({"unsubscribe_url": ""}, "unsubscribe URL"),
        ({"unsubscribe_url": "https://x.test/u/1\r\nX: y"}, "unsubscribe URL"),
    ],
)
def test_a_bad_message_is_rejected_and_the_rest_still_go(changes, fragment):
    payload = build_payload([message(1), message(2, **changes), message(3)])
    assert [m.delivery_id for m in payload.messages] == [1001, 1003]
    (rejection,) = payload.rejected
    assert rejection.message.delivery_id == 1002 and fragment in rejection.reason


def test_a_substitution_key_in_the_subject_is_refused():
    # SendGrid substitutes in the subject too: that would put recipient data in a header.
    shared = replace(SHARED, subject="For -name-")
    payload = build_payload([message(1, shared)])
    assert payload.body is None
    assert "subject contains substitution key" in payload.rejected[0].reason


def test_a_bad_clinic_sender_fails_the_whole_group_with_the_reason():
    payload = build_payload([message(1, from_email="care at clinic"), message(2, from_email="care at clinic")])
    assert payload.body is None
    assert {r.reason for r in payload.rejected} == {"the clinic's from address is not a valid email address"}


def test_request_key_groups_only_identical_content():
    assert request_key(message(1)) == request_key(message(2))
    assert request_key(message(1, shared=None)) is None
    same_key_other_html = replace(SHARED, html="<p>different</p>")
    assert request_key(message(1, same_key_other_html)) != request_key(message(2))
    assert request_key(message(1, categories=("x",))) != request_key(message(2))


def test_without_drops_personalizations_by_index_and_keeps_order():
    payload = build_payload([message(i) for i in range(5)])
    rest = payload.without([1, 3])
    assert [m.delivery_id for m in rest.messages] == [1000, 1002, 1004]
    assert [p["custom_args"]["delivery_id"] for p in rest.body["personalizations"]] == ["1000", "1002", "1004"]
    assert len(payload.body["personalizations"]) == 5  # the original is untouched
    assert payload.without(range(5)).body is None


names = st.text(st.characters(codec="utf-8"), max_size=40)


@hsettings(max_examples=200, deadline=None)
@given(st.lists(names, min_size=1, max_size=8), names)
def test_any_names_and_subject_give_clean_headers_and_keep_order(recipient_names, subject):
    shared = replace(SHARED, subject=subject or "x")
    group = [message(i, shared, name=n, substitutions={"-n-": n}) for i, n in enumerate(recipient_names)]
    payload = build_payload(group)
    if payload.body is None:  # only possible when the cleaned subject is empty or holds the key
        assert all(("subject" in r.reason) for r in payload.rejected)
        return
    body = json.loads(json.dumps(payload.body))
    for value in _headers_of(body):
        assert not any(ch in value for ch in "\r\n\x00\u2028\u2029")
    kept = [m.delivery_id for m in payload.messages]
    assert kept == sorted(kept)
    assert [p["custom_args"]["delivery_id"] for p in body["personalizations"]] == [str(i) for i in kept]
    assert [p["substitutions"]["-n-"] for p in body["personalizations"]] == [m.substitutions["-n-"] for m in payload.messages]


@given(st.text(alphabet=st.characters(max_codepoint=0x2030), max_size=40), st.sampled_from(["", "https://", "http://"]))
def test_the_fast_ascii_checks_accept_nothing_the_general_ones_refuse(text, scheme):
    from delivery.backends import sendgrid_payload as sp

    if sp._ADDRESS_ASCII.fullmatch(text):
        assert sp._ADDRESS.fullmatch(text)
    if sp._URL_ASCII.fullmatch(scheme + text):
        assert sp._URL.fullmatch(scheme + text)


def test_internationalised_addresses_and_links_still_go_through_the_general_checks():
    ok = [message(1, email="zoë@bücher.example"), replace(message(2), unsubscribe_url="https://klinik.example/ü/t-2")]
    bad = [message(3, email="a b@example.com"), replace(message(4), unsubscribe_url="https://x.example/<t>")]
    payload = build_payload(ok + bad)
    assert [m.delivery_id for m in payload.messages] == [1001, 1002]
    assert [r.message.delivery_id for r in payload.rejected] == [1003, 1004]

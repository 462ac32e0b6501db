"""Link tokens: round trip, refusal of anything altered, forged, expired or for another purpose,
and agreement with itsdangerous's own TimestampSigner (verification is itsdangerous's)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, strategies as st
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from subscribers.tokens import (
    CONFIRM_MAX_AGE,
    UNSUBSCRIBE_MAX_AGE,
    InvalidToken,
    LinkClaims,
    TokenSigner,
)

KEY = "test-secret-key-" + "k" * 32
T0 = 1_750_000_000.0
IDS = st.integers(min_value=0, max_value=2**63 - 1)
OPTIONAL = st.none() | IDS


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_lifetimes():
    assert UNSUBSCRIBE_MAX_AGE >= 30 * 24 * 3600  # an old email's link must still work
    assert CONFIRM_MAX_AGE <= 30 * 24 * 3600


@given(sid=IDS, cid=OPTIONAL, did=OPTIONAL)
def test_round_trip_and_url_safe(sid, cid, did):
    signer = TokenSigner(KEY)
    token = signer.unsubscribe_token(sid, cid, did)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", token)  # goes into a URL path and HTML as it is
    assert signer.read_unsubscribe(token) == LinkClaims(sid, cid, did)
    assert signer.read_confirm(signer.confirm_token(sid)) == LinkClaims(sid, None, None)


@given(sid=IDS, cid=OPTIONAL, did=OPTIONAL, now=st.integers(min_value=1, max_value=2**32 - 1))
def test_fast_signing_is_exactly_itsdangerous_timestamp_signer(sid, cid, did, now):
    class At(TimestampSigner):
        def get_timestamp(self) -> int:
            return now

    token = TokenSigner(KEY, clock=Clock(now + 0.9)).unsubscribe_token(sid, cid, did)
    payload = f"{sid}.{'' if cid is None else cid}.{'' if did is None else did}"
    assert token == At(KEY, salt="drip.unsubscribe").sign(payload).decode()
    # and itsdangerous alone verifies it
    assert At(KEY, salt="drip.unsubscribe").unsign(token, max_age=10).decode() == payload


def test_the_timestamp_follows_the_clock():
    clock = Clock()
    signer = TokenSigner(KEY, clock=clock)
    first = signer.unsubscribe_token(1, 2, 3)
    clock.now += 5
    second = signer.unsubscribe_token(1, 2, 3)
    assert first != second
    assert first.split(".")[3] != second.split(".")[3]


def test_tampered_tokens_are_refused():
    signer = TokenSigner(KEY)
    token = signer.unsubscribe_token(10, 3, 7)
    sid, cid, did, stamp, sig = token.split(".")
    tampered = [
        f"11.{cid}.{did}.{stamp}.{sig}",  # another subscriber
        f"{sid}..{did}.{stamp}.{sig}",  # campaign dropped: "unsubscribe from everything"
        f"{sid}.{cid}.{did}.{stamp}.{sig[:-2]}{'BB' if sig.endswith('AA') else 'AA'}",  # another signature
        f"{sid}.{cid}.{did}.AAAAAA.{sig}",  # another time
        token[:-1],
        "",
        "not-a-token",
        "10.3.7",
        "é" * 20,
    ]
    for bad in tampered:
        with pytest.raises(InvalidToken, match="not valid"):
            signer.read_unsubscribe(bad)


def test_another_key_or_another_purpose_is_refused():
    signer = TokenSigner(KEY)
    with pytest.raises(InvalidToken, match="not valid"):
        signer.read_unsubscribe(TokenSigner("someone-elses-key").unsubscribe_token(10, 3, 7))
    with pytest.raises(InvalidToken, match="not valid"):
        signer.read_unsubscribe(signer.confirm_token(10))  # a confirm link is no unsubscribe link
    with pytest.raises(InvalidToken, match="not valid"):
        signer.read_confirm(signer.unsubscribe_token(10))


def test_expired_tokens_are_refused_and_say_so():
    clock = Clock()
    signer = TokenSigner(KEY, clock=clock)
    unsubscribe, confirm = signer.unsubscribe_token(10, 3, 7), signer.confirm_token(10)
    clock.now += CONFIRM_MAX_AGE
    assert signer.read_confirm(confirm) == LinkClaims(10)  # the last second of its life
    clock.now += 1
    with pytest.raises(InvalidToken, match="expired"):
        signer.read_confirm(confirm)
    clock.now = T0 + UNSUBSCRIBE_MAX_AGE + 1
    with pytest.raises(InvalidToken, match="expired"):
        signer.read_unsubscribe(unsubscribe)
    assert signer.read_unsubscribe(unsubscribe, max_age=UNSUBSCRIBE_MAX_AGE + 1) == LinkClaims(10, 3, 7)
    # a token from the future (clock skew, or forged time) is not accepted either
    clock.now = T0 - 60
    with pytest.raises(InvalidToken):
        signer.read_unsubscribe(unsubscribe)


@pytest.mark.parametrize("payload", ["1.2", "1.2.3.4", "a.2.3", "1.-2.3", " 1.2.3", "1.2.3\n", ".2.3", "1.2.३"])
def test_validly_signed_but_malformed_payloads_are_refused(payload):
    """Only the signer can make these; still, reading is strict."""
    token = TimestampSigner(KEY, salt="drip.unsubscribe").sign(payload).decode()
    with pytest.raises(InvalidToken, match="not valid"):
        TokenSigner(KEY).read_unsubscribe(token)


def test_tokens_from_before_the_compact_payload_still_work():
    """Emails already sent carry the older format (a signed JSON list): their links keep working."""
    old = URLSafeTimedSerializer(KEY, salt="drip.unsubscribe")
    signer = TokenSigner(KEY)
    assert signer.read_unsubscribe(old.dumps([10, 3, None])) == LinkClaims(10, 3, None)
    confirm = URLSafeTimedSerializer(KEY, salt="drip.confirm").dumps([10, None, None])
    assert signer.read_confirm(confirm) == LinkClaims(10)
    for bad in ([10, 3], ["10", None, None], [None, 1, 2], [10, -1, None], {"a": 1}):
        with pytest.raises(InvalidToken, match="not valid"):
            signer.read_unsubscribe(old.dumps(bad))


def test_bad_ids_and_keys_are_refused_when_signing():
    signer = TokenSigner(KEY)
    with pytest.raises(ValueError):
        signer.unsubscribe_token("10")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        signer.unsubscribe_token(10, -3, 7)
    with pytest.raises(ValueError):
        TokenSigner("")

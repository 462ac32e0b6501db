"""Signed, unguessable tokens for unsubscribe, preference and confirm links (itsdangerous).

Tokens carry the subscriber id (and the campaign for "unsubscribe from this campaign only"), are
signed with the secret key and a per-purpose salt, and stay valid for `max_age` seconds (at least
30 days for unsubscribe: an old email's link must still work).
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

UNSUBSCRIBE_MAX_AGE = 400 * 24 * 3600  # links in old emails keep working for over a year
CONFIRM_MAX_AGE = 7 * 24 * 3600


class InvalidToken(Exception):
    """A forged, altered, expired or wrong-purpose token."""


@dataclass(frozen=True)
class LinkClaims:
    subscriber_id: int
    campaign_id: int | None = None
    delivery_id: int | None = None


class TokenSigner:
    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("a secret key is required to sign tokens")
        self._unsub = URLSafeTimedSerializer(secret_key, salt="drip.unsubscribe")
        self._confirm = URLSafeTimedSerializer(secret_key, salt="drip.confirm")

    def unsubscribe_token(self, subscriber_id: int, campaign_id: int | None = None, delivery_id: int | None = None) -> str:
        return self._unsub.dumps([subscriber_id, campaign_id, delivery_id])

    def read_unsubscribe(self, token: str, max_age: int = UNSUBSCRIBE_MAX_AGE) -> LinkClaims:
        return self._load(self._unsub, token, max_age)

    def confirm_token(self, subscriber_id: int) -> str:
        return self._confirm.dumps([subscriber_id, None, None])

    def read_confirm(self, token: str, max_age: int = CONFIRM_MAX_AGE) -> LinkClaims:
        return self._load(self._confirm, token, max_age)

    @staticmethod
    def _load(serializer: URLSafeTimedSerializer, token: str, max_age: int) -> LinkClaims:
        try:
            data = serializer.loads(token, max_age=max_age)
        except SignatureExpired as exc:
            raise InvalidToken("this link has expired") from exc
        except BadSignature as exc:
            raise InvalidToken("this link is not valid") from exc
        if not (isinstance(data, list) and len(data) == 3 and isinstance(data[0], int)):
            raise InvalidToken("this link is not valid")
        return LinkClaims(subscriber_id=data[0], campaign_id=data[1], delivery_id=data[2])

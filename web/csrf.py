"""CSRF tokens for forms on pages that are authenticated by something other than a cookie.

The preference page is reached through a signed token in its URL, so there is no session to
tie a double-submit cookie to. Instead the form carries a hidden field that is an HMAC-signed,
timestamped digest of what authenticates the page (here: the link token). A forged form on
another site cannot produce it without the secret key and the link, it only fits that one link,
and it expires (`max_age`) so an old copy of the page cannot be replayed for ever. The staff app
can bind the same guard to its session id.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

FORM_MAX_AGE = 6 * 3600  # a preference page left open for an afternoon still submits


def _digest(bound_to: str) -> str:
    return hashlib.sha256(bound_to.encode("utf-8")).hexdigest()


class FormGuard:
    def __init__(self, secret_key: str, salt: str = "drip.form") -> None:
        if not secret_key:
            raise ValueError("a secret key is required for form tokens")
        self._serializer = URLSafeTimedSerializer(secret_key, salt=salt)

    def issue(self, bound_to: str) -> str:
        """A form token valid only for `bound_to` (a link token, a session id)."""
        return self._serializer.dumps(_digest(bound_to))

    def valid(self, bound_to: str, value: str | None, max_age: int = FORM_MAX_AGE) -> bool:
        if not value or len(value) > 500:
            return False
        try:
            digest = self._serializer.loads(value, max_age=max_age)
        except BadSignature:  # includes SignatureExpired
            return False
        return isinstance(digest, str) and hmac.compare_digest(digest, _digest(bound_to))


def same_origin(request: Request, base_url: str) -> bool:
    """Refuse form posts a browser says came from another site. The form token is checked too.

    Browsers send `Origin: null` for our own forms because the pages are served with
    `Referrer-Policy: no-referrer`; "null" therefore says nothing and is left to the form token.
    Fetch metadata (`Sec-Fetch-Site`) is sent regardless of the referrer policy.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    base = urlsplit(base_url)
    allowed = {f"{base.scheme}://{base.netloc}", f"{request.url.scheme}://{request.url.netloc}"}
    return origin.rstrip("/") in allowed

"""VERP return paths: the envelope sender names the delivery, signed so it cannot be forged.

`bounces+d42-1a2b3c4d5e6f@bounce.clinic.example`: a bounce comes back to the envelope sender, so
its recipient address says which delivery bounced, whatever the remote MTA's report format. The
HMAC (the project's secret key, 12 hex = 48 bits) means a forged report cannot suppress a
patient by guessing delivery ids. Local part stays lower-case dot-atom: every MTA keeps it.
"""

from __future__ import annotations

import hashlib
import hmac
import re

PREFIX = "bounces"
_MAC_HEX = 12
_VERP = re.compile(rf"^{PREFIX}\+d(\d{{1,18}})-([0-9a-f]{{{_MAC_HEX}}})@([^@\s>]+)$", re.IGNORECASE)


def _mac(secret: str, delivery_id: int) -> str:
    return hmac.new(secret.encode("utf-8"), f"verp:{int(delivery_id)}".encode("ascii"), hashlib.sha256).hexdigest()[
        :_MAC_HEX]


def verp_address(delivery_id: int, domain: str, secret: str) -> str:
    """The envelope MAIL FROM for one delivery."""
    return f"{PREFIX}+d{int(delivery_id)}-{_mac(secret, delivery_id)}@{domain}"


def parse_verp(address: str, secret: str, domain: str | None = None) -> int | None:
    """The delivery id of a VERP address we signed, else None (forged, altered, other domain)."""
    m = _VERP.match(address.strip().strip("<>").strip())
    if m is None:
        return None
    if domain is not None and m.group(3).lower() != domain.lower():
        return None
    delivery_id = int(m.group(1))
    if not hmac.compare_digest(m.group(2).lower(), _mac(secret, delivery_id)):
        return None
    return delivery_id


def find_verp(text: str, secret: str, domain: str | None = None) -> int | None:
    """The first signed VERP address anywhere in `text` (a header value), else None."""
    for candidate in re.findall(rf"{PREFIX}\+d\d+-[0-9a-f]+@[A-Za-z0-9.-]+", text, re.IGNORECASE):
        found = parse_verp(candidate, secret, domain)
        if found is not None:
            return found
    return None

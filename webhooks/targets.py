"""Where a webhook may go: http(s) to a public address, unless DRIP_WEBHOOK_ALLOW_PRIVATE=true.

A URL given by staff could otherwise point the worker at the clinic's own network (the database,
a router's admin page, a cloud metadata service at 169.254.169.254). The host is resolved and
every address checked when the endpoint is added and again at each send (a name can change to a
private address later: DNS rebinding), and the request then goes to the address that was checked
(Host header and TLS SNI keep the name), so a second lookup cannot swap it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from drip.errors import InputError


class TargetRefused(InputError):
    """The webhook URL is not allowed (bad form, or a private/loopback/link-local address)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (for Host and SNI)
    port: int
    path: str  # path + query
    address: str  # the checked IP the request is sent to

    @property
    def pinned_url(self) -> str:
        addr = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{addr}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def check_form(url: str) -> str:
    """A URL staff may save: http(s), a host, no credentials, no whitespace or control characters."""
    url = (url or "").strip()
    if not url or any(c.isspace() or ord(c) < 32 for c in url) or len(url) > 2000:
        raise TargetRefused("the webhook URL must be one http:// or https:// URL", where="url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"{url!r} is not an http:// or https:// URL with a host", where="url")
    if parts.username or parts.password:
        raise TargetRefused("the webhook URL must not carry a user name or password", where="url")
    try:
        parts.port
    except ValueError:
        raise TargetRefused(f"{url!r} has a bad port", where="url") from None
    return url


def is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def resolve(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host and check every address; the first good one is the target."""
    url = check_form(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise LookupError(f"cannot resolve {host!r}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0].split("%")[0] for info in infos))
    if not addresses:
        raise LookupError(f"cannot resolve {host!r}")
    if not allow_private:
        bad = [a for a in addresses if is_private(a)]
        if bad:
            raise TargetRefused(
                f"{host} resolves to a private or loopback address ({bad[0]}); set DRIP_WEBHOOK_ALLOW_PRIVATE=true "
                "to allow it", where="url")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, addresses[0])

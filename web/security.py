"""Security headers on every response (pure ASGI middleware: no buffering, works for streams),
and which proxy's `X-Forwarded-For` to believe.

Defaults are set only when the route did not set the header itself, so a page that must be
framed (the staff email preview iframe) can answer with `X-Frame-Options: SAMEORIGIN` and a
CSP with `frame-ancestors 'self'` of its own.

Referrer-Policy is `no-referrer` because unsubscribe and preference URLs carry a token: a click
from those pages to the clinic's website must not hand the token over in a Referer header.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drip.config import parse_trusted_proxies

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data: https:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

DEFAULT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CSP,
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers = dict(DEFAULT_HEADERS)
        if hsts:  # only when the public URL is https; browsers ignore it over http anyway
            self.headers["Strict-Transport-Security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def proxy_middleware(trusted_proxies: str) -> list[Middleware]:
    """The client address from `X-Forwarded-For`/`-Proto`, but only on connections from a configured
    proxy (uvicorn's own ProxyHeadersMiddleware: it takes the last address the proxies did not add).

    Without a configured proxy the header is ignored, so a process on the same host cannot pick a
    new address per request and slip past the per-IP login and sign-up limits. It lives in the app,
    not in the server's options, so every way of serving the app (uvicorn, tests) applies one rule.
    """
    proxies = parse_trusted_proxies(trusted_proxies)
    if not proxies:
        return []
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)]

"""The clinic logo uploaded on /staff/settings, served from our own URL (emails link to it).

The file name carries the logo's hash, so a new logo is a new URL and the old one can be cached
for long. Served with its checked content type, `nosniff`, and a CSP that runs nothing.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from drip import clinic_settings as cs
from web.context import WebContext, web_context


async def logo_endpoint(request: Request) -> Response:
    ctx = web_context(request)
    name = request.path_params["file"]

    def load():
        with ctx.runtime.read_sessions() as db:
            row = cs.logo(db)
            return (row.content_type, row.sha256, row.data) if row is not None else None

    found = await run_in_threadpool(load)
    if found is None or name.split(".", 1)[0] != found[1][:16]:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(found[2], media_type=found[0], headers={
        "Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })


def routes(ctx: WebContext) -> list[BaseRoute]:
    return [Route(cs.LOGO_PATH + "{file}", logo_endpoint, methods=["GET"], name="clinic_logo")]

"""`GET /metrics`: Prometheus text format (see drip/metrics.py for what is in it and why).

Answered from loopback (no proxy in between), or to `Authorization: Bearer $DRIP_METRICS_TOKEN`;
anyone else gets 403. The gauges come from read-only sessions, so a scrape never waits for the
worker's writes on SQLite.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from drip.metrics import CONTENT_TYPE_LATEST, allowed, exposition, ledger_registry
from web.context import WebContext


def routes(ctx: WebContext) -> list[BaseRoute]:
    ledger = ledger_registry(ctx.runtime.read_sessions, ctx.clock)
    token = ctx.settings.metrics_token

    async def metrics(request: Request) -> Response:
        host = request.client.host if request.client else None
        if not allowed(host, request.headers, token):
            return JSONResponse({"error": "metrics are served to loopback, or with Authorization: Bearer "
                                          "DRIP_METRICS_TOKEN"}, status_code=403)
        body = await run_in_threadpool(exposition, ledger)
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})

    return [Route("/metrics", metrics, methods=["GET"], name="metrics")]

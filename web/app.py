"""The ASGI app `drip serve` runs: public patient pages, the SendGrid webhook, health check.

`create_app(runtime)` builds one `WebContext` (runtime, templates, token signer, form guard,
clock) and asks each routes module for its routes. To add an area (the staff admin, the REST
API), write a module with `routes(ctx: WebContext) -> list[BaseRoute]` and add it to
`ROUTE_MODULES`; a FastAPI app can be mounted the same way (`Mount("/api", app=...)`).

Every response gets the security headers from web/security.py unless the route set its own
(e.g. an email preview page answers `X-Frame-Options: SAMEORIGIN` to be framed by the staff UI).
"""

from __future__ import annotations

import contextlib
import logging
from typing import AsyncIterator, Protocol, Sequence

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from delivery.heartbeat import WorkerHealth, worker_health
from drip.config import secret_key
from drip.models import utcnow
from drip.runtime import Runtime, open_runtime
from subscribers.tokens import TokenSigner
from web import api, clinic_assets, metrics, public, signup, staff, webhooks
from web.context import Clock, WebContext, web_context
from web.csrf import FormGuard
from web.pages import make_templates, render
from web.request_id import RequestIdMiddleware
from web.security import SecurityHeadersMiddleware, proxy_middleware

log = logging.getLogger("drip.web")


class RoutesModule(Protocol):
    """A routes module (web/public.py, web/webhooks.py, later the staff app and the API)."""

    def routes(self, ctx: WebContext) -> list[BaseRoute]: ...


ROUTE_MODULES: list[RoutesModule] = [public, webhooks, staff, signup, api, metrics, clinic_assets]  # type: ignore[list-item]

# Paths answered with JSON errors rather than HTML pages (machines, not people).
_MACHINE_PREFIXES = ("/webhooks/", "/healthz", "/api/", "/metrics")


async def healthz(request: Request) -> Response:
    """Liveness, database reachability and whether any worker is sending, for a monitor or `curl`.

    A stale worker is reported, not turned into a failure: the web app itself is healthy and must
    stay in a load balancer's rotation (unsubscribe links must work). `?require=worker` makes it
    a 503 as well, for a monitor that should page someone when sending has stopped.
    """
    ctx = web_context(request)

    def check() -> WorkerHealth:  # a read session: a long write on SQLite does not make the app look down
        with ctx.runtime.read_sessions() as s:
            return worker_health(s, ctx.clock(), ctx.settings.worker_stale_seconds)

    try:
        health = await run_in_threadpool(check)
    except Exception:  # any database failure means "not healthy"; the log has the detail
        log.exception("health check: database unreachable")
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
    body = {"status": "ok" if health.sending else "degraded", "database": "ok", "worker": health.as_json()}
    failing = request.query_params.get("require") == "worker" and not health.sending
    return JSONResponse(body, status_code=503 if failing else 200, headers={"Cache-Control": "no-store"})


async def stylesheet(request: Request) -> Response:
    css = web_context(request).templates.stylesheet  # type: ignore[attr-defined]
    return Response(css.body, media_type="text/css; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=86400", "ETag": f'"{css.version}"'})


_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Page not found", 405: "Not allowed", 413: "Too large"}


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(_MACHINE_PREFIXES):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    title = _TITLES.get(exc.status_code, "Something went wrong")
    detail = "This page does not exist." if exc.status_code == 404 else "Please go back and try again."
    return render(web_context(request).templates, request, "error.html", {"title": title, "detail": detail},
                  status_code=exc.status_code, headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if request.url.path.startswith(_MACHINE_PREFIXES):
        return JSONResponse({"error": "internal error"}, status_code=500)
    return render(web_context(request).templates, request, "error.html",
                  {"title": "Something went wrong", "detail": "Please try again in a few minutes."}, status_code=500)


class _App(Starlette):
    """Starlette with the request id outermost: even a 500 answered by Starlette's error
    middleware carries it, in its header and its log lines."""

    def build_middleware_stack(self):  # type: ignore[no-untyped-def]
        return RequestIdMiddleware(super().build_middleware_stack())


def create_app(
    runtime: Runtime | None = None,
    *,
    clock: Clock = utcnow,
    route_modules: Sequence[RoutesModule] | None = None,
    worker: bool = False,
) -> Starlette:
    """The web app. Without a runtime it opens (and on shutdown closes) its own from the environment.

    With `worker`, the sending worker runs in this process too, started and stopped with the app
    (`drip serve --worker`: one command for a small clinic).
    """
    owns_runtime = runtime is None
    rt = runtime or open_runtime()
    key = secret_key(rt.settings)
    templates = make_templates(rt.settings)
    ctx = WebContext(runtime=rt, templates=templates, signer=TokenSigner(key),
                     forms=FormGuard(key, salt="drip.preferences.form"), clock=clock)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        Route("/static/site.css", stylesheet, methods=["GET"], name="stylesheet"),
    ]
    for module in route_modules if route_modules is not None else ROUTE_MODULES:
        routes += module.routes(ctx)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded = None
        if worker:
            from drip.worker import EmbeddedWorker

            embedded = EmbeddedWorker(rt)
            await run_in_threadpool(embedded.start)
        try:
            yield
        finally:
            if embedded is not None:
                await run_in_threadpool(embedded.stop)
            if owns_runtime:
                rt.close()

    app = _App(
        routes=routes,
        middleware=[*proxy_middleware(rt.settings.trusted_proxies),
                    Middleware(SecurityHeadersMiddleware, hsts=rt.settings.base_url.startswith("https://"))],
        exception_handlers={HTTPException: http_error, 500: server_error},
        lifespan=lifespan,
    )
    app.state.web = ctx
    return app

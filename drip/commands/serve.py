"""`drip serve`: the web app (staff app, REST API, patients' pages, SendGrid webhook) under uvicorn."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # uvicorn and the web stack load only when the server starts (tests/test_startup.py)
    import uvicorn

    from drip.runtime import Runtime


def build_server(runtime: Runtime, host: str, port: int, *, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for the app; `serve_cmd` runs it, tests run it on port 0 in a thread."""
    import uvicorn

    from web.app import create_app

    config = uvicorn.Config(
        create_app(runtime),
        host=host,
        port=port,
        log_level=log_level,
        # Behind a reverse proxy on the same host (TLS ends there): trust its X-Forwarded-* only.
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        server_header=False,
        lifespan="on",
    )
    return uvicorn.Server(config)


def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (put a TLS proxy in front for the internet)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
) -> None:
    """Run the web app at http://HOST:PORT/ (e.g. http://127.0.0.1:8000/staff/).

    \b
    /staff/        the staff app: upload an article, review it, send a test
                   to yourself, publish; subscribers and newsletters
                   (create a login first: `drip staff add EMAIL`)
    /api/v1/       the REST API for the clinic's other systems; docs at
                   /api/v1/docs, OpenAPI at /api/v1/openapi.json
                   (tokens: `drip api-token create NAME`)
    /subscribe     patients' sign-up; /u/ and /preferences/ for
                   unsubscribe and preferences
    /webhooks/sendgrid  SendGrid's signed event webhook
    /healthz       health check
    """
    from drip.runtime import open_runtime

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runtime = open_runtime()
    try:
        build_server(runtime, host, port).run()
    finally:
        runtime.close()


def register(app: typer.Typer) -> None:
    app.command("serve", short_help="Web app: staff app (/staff/), REST API (/api/v1/).")(serve_cmd)

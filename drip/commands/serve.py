"""`drip serve [--worker]`: the web app (unsubscribe/preference pages, SendGrid webhook, staff
pages, API) under uvicorn; with `--worker` the sending worker runs in the same process."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # uvicorn and the web stack load only when the server starts (tests/test_startup.py)
    import uvicorn

    from drip.runtime import Runtime


def build_server(runtime: Runtime, host: str, port: int, *, log_level: str = "info",
                 worker: bool = False) -> uvicorn.Server:
    """A uvicorn server for the app; `serve_cmd` runs it, tests run it on port 0 in a thread."""
    import uvicorn

    from web.app import create_app

    config = uvicorn.Config(
        create_app(runtime, worker=worker),
        host=host,
        port=port,
        log_level=log_level,
        # X-Forwarded-* are applied by the app itself, from DRIP_TRUSTED_PROXIES only (web/security.py).
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        log_config=None,  # uvicorn's lines go through drip's handler: DRIP_LOG_FORMAT, request ids

    )
    return uvicorn.Server(config)


def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (put a TLS proxy in front for the internet)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0: any free port, logged at start)."),
    worker: bool = typer.Option(False, "--worker", help="Also send the emails (the `drip run` worker) in this process."),
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

    With --worker, the sending worker runs in this process too (one command for a small clinic).
    """
    from drip.logs import configure_logging
    from drip.runtime import open_runtime

    runtime = open_runtime()
    configure_logging(runtime.settings.log_format)
    try:
        # uvicorn handles SIGTERM/SIGINT; the app's shutdown then stops the worker after its batch
        build_server(runtime, host, port, worker=worker).run()
    finally:
        runtime.close()


def register(app: typer.Typer) -> None:
    app.command("serve", short_help="Web app: staff app (/staff/), REST API (/api/v1/).")(serve_cmd)

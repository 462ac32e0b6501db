"""`drip serve`: the web app (unsubscribe/preference pages, SendGrid webhook) under uvicorn."""

from __future__ import annotations

import logging

import typer
import uvicorn

from drip.runtime import Runtime, open_runtime


def build_server(runtime: Runtime, host: str, port: int, *, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for the app; `serve_cmd` runs it, tests run it on port 0 in a thread."""
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
        log_config=None,  # uvicorn's lines go through drip's handler: DRIP_LOG_FORMAT, request ids

    )
    return uvicorn.Server(config)


def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (put a TLS proxy in front for the internet)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0: any free port, logged at start)."),
) -> None:
    """Run the web app: unsubscribe and preference pages, the SendGrid event webhook, /healthz."""
    from drip.logs import configure_logging

    runtime = open_runtime()
    configure_logging(runtime.settings.log_format)
    try:
        build_server(runtime, host, port).run()
    finally:
        runtime.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)

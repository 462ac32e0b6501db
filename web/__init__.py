"""Web: the ASGI app (public patient pages, webhooks, staff admin, REST API)."""

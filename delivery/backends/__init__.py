"""Backends: outbox (default), smtp, sendgrid. Only the sendgrid module imports `sendgrid`."""

from __future__ import annotations

import importlib

from drip.config import Settings
from drip.errors import ConfigurationError
from delivery.types import EmailBackend

BACKENDS = {
    "outbox": "delivery.backends.outbox:OutboxBackend",
    "smtp": "delivery.backends.smtp:SMTPBackend",
    "sendgrid": "delivery.backends.sendgrid:SendGridBackend",
}


def get_backend(settings: Settings, name: str | None = None) -> EmailBackend:
    name = name or settings.backend
    try:
        module_name, cls_name = BACKENDS[name].split(":")
    except KeyError:
        raise ConfigurationError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})") from None
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(settings)

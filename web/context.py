"""What every route needs, built once in `create_app` and kept on `app.state.web`.

Routes read it with `web_context(request)` instead of importing globals, so tests (and the
staff app added later) get their own runtime, clock and templates per app.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from drip.config import Settings
from drip.runtime import Runtime
from subscribers.tokens import TokenSigner
from web.csrf import FormGuard

Clock = Callable[[], datetime]


@dataclass
class WebContext:
    runtime: Runtime
    templates: Jinja2Templates
    signer: TokenSigner
    forms: FormGuard
    clock: Clock

    @property
    def settings(self) -> Settings:
        return self.runtime.settings


def web_context(request: Request) -> WebContext:
    return request.app.state.web

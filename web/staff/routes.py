"""The staff app's URL map, mounted at /staff with its own session cookie.

`routes(ctx)` is what web/app.py's ROUTE_MODULES asks for. Route names are `staff:<name>`
(e.g. `path_for('staff:campaign', slug=...)` in templates).
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from drip.config import secret_key
from web.context import WebContext
from web.staff import account, bulk, campaigns, newsletters, signup, subscribers, webhooks
from web.staff.auth import COOKIE_NAME, SESSION_LIFETIME
from web.staff.base import StaffContext

GET, POST, BOTH = ["GET"], ["POST"], ["GET", "POST"]


def routes(ctx: WebContext) -> list[BaseRoute]:
    staff = StaffContext.build(ctx)
    page = staff.page

    async def stylesheet(request: Request) -> Response:
        assert staff.stylesheet is not None
        return Response(staff.stylesheet.body, media_type="text/css; charset=utf-8",
                        headers={"Cache-Control": "public, max-age=86400", "ETag": f'"{staff.stylesheet.version}"'})

    async def home(request: Request) -> Response:
        return RedirectResponse("/staff/campaigns", status_code=303)

    step = "/campaigns/{slug}/steps/{position:int}"
    inner = [
        Route("/", home, methods=GET, name="home"),
        Route("/login", page(account.login, login=False), methods=BOTH, name="login"),
        Route("/logout", page(account.logout), methods=POST, name="logout"),
        # campaigns
        Route("/campaigns", page(campaigns.campaign_list), methods=GET, name="campaigns"),
        Route("/campaigns/upload", page(campaigns.campaign_upload, uploads=True), methods=POST, name="campaign_upload"),
        Route("/campaigns/{slug}", page(campaigns.campaign_page), methods=GET, name="campaign"),
        Route("/campaigns/{slug}/status", page(campaigns.campaign_status), methods=POST, name="campaign_status"),
        Route("/campaigns/{slug}/enroll", page(bulk.campaign_enroll_tag), methods=POST, name="campaign_enroll_tag"),
        Route("/campaigns/{slug}/tags", page(bulk.campaign_link_tag), methods=POST, name="campaign_link_tag"),
        Route("/campaigns/{slug}/bulk/{job}", page(bulk.campaign_bulk), methods=GET, name="campaign_bulk"),
        Route("/campaigns/{slug}/exits", page(campaigns.campaign_exits), methods=POST, name="campaign_exits"),
        Route("/campaigns/{slug}/cadence", page(campaigns.campaign_cadence), methods=POST, name="campaign_cadence"),
        Route("/campaigns/{slug}/retry", page(campaigns.campaign_retry), methods=POST, name="campaign_retry"),
        Route(step, page(campaigns.step_page), methods=BOTH, name="step"),
        Route(step + "/preview", page(campaigns.step_preview), methods=GET, name="step_preview"),
        Route(step + "/email", page(campaigns.step_email), methods=GET, name="step_email"),
        Route(step + "/test", page(campaigns.step_test), methods=POST, name="step_test"),
        # subscribers
        Route("/subscribers", page(subscribers.subscriber_list), methods=GET, name="subscribers"),
        Route("/subscribers/import", page(subscribers.subscriber_import, uploads=True), methods=POST,
              name="subscriber_import"),
        Route("/subscribers/add", page(subscribers.subscriber_add), methods=POST, name="subscriber_add"),
        Route("/subscribers/{id:int}", page(subscribers.subscriber_page), methods=GET, name="subscriber"),
        Route("/subscribers/{id:int}/edit", page(subscribers.subscriber_edit), methods=POST, name="subscriber_edit"),
        Route("/subscribers/{id:int}/tags", page(subscribers.subscriber_tags), methods=POST, name="subscriber_tags"),
        Route("/subscribers/{id:int}/enroll", page(subscribers.subscriber_enroll), methods=POST,
              name="subscriber_enroll"),
        Route("/subscribers/{id:int}/attributes", page(subscribers.subscriber_attributes), methods=POST,
              name="subscriber_attributes"),
        Route("/subscribers/{id:int}/stop", page(subscribers.subscriber_stop), methods=POST, name="subscriber_stop"),
        Route("/subscribers/{id:int}/unsubscribe", page(subscribers.subscriber_unsubscribe), methods=POST,
              name="subscriber_unsubscribe"),
        Route("/subscribers/{id:int}/suppress", page(subscribers.subscriber_suppress), methods=POST,
              name="subscriber_suppress"),
        Route("/subscribers/{id:int}/export", page(subscribers.subscriber_export_page), methods=GET,
              name="subscriber_export"),
        Route("/subscribers/{id:int}/export.json", page(subscribers.subscriber_export_json), methods=GET,
              name="subscriber_export_json"),
        Route("/subscribers/{id:int}/erase", page(subscribers.subscriber_erase), methods=POST,
              name="subscriber_erase"),
        # sign-up form
        Route("/signup", page(signup.signup_page), methods=GET, name="signup"),
        Route("/signup", page(signup.signup_set), methods=POST, name="signup_set"),
        # outbound webhooks
        Route("/webhooks", page(webhooks.webhooks_page), methods=GET, name="webhooks"),
        Route("/webhooks/add", page(webhooks.webhook_add), methods=POST, name="webhook_add"),
        Route("/webhooks/{id:int}/rotate", page(webhooks.webhook_rotate), methods=POST, name="webhook_rotate"),
        Route("/webhooks/{id:int}/active", page(webhooks.webhook_active), methods=POST, name="webhook_active"),
        Route("/webhooks/deliveries/{delivery:int}/replay", page(webhooks.webhook_replay), methods=POST,
              name="webhook_replay"),
        # newsletters
        Route("/newsletters", page(newsletters.newsletter_list), methods=GET, name="newsletters"),
        Route("/newsletters/create", page(newsletters.newsletter_create, uploads=True), methods=POST,
              name="newsletter_create"),
        Route("/newsletters/{slug}", page(newsletters.newsletter_page), methods=GET, name="newsletter"),
        Route("/newsletters/{slug}/email", page(newsletters.newsletter_email), methods=GET, name="newsletter_email"),
        Route("/newsletters/{slug}/schedule", page(newsletters.newsletter_schedule), methods=POST,
              name="newsletter_schedule"),
        Route("/newsletters/{slug}/cancel", page(newsletters.newsletter_cancel), methods=POST,
              name="newsletter_cancel"),
        Route("/newsletters/{slug}/pause", page(newsletters.newsletter_pause), methods=POST,
              name="newsletter_pause"),
        Route("/newsletters/{slug}/test", page(newsletters.newsletter_test), methods=POST, name="newsletter_test"),
    ]
    session = Middleware(
        SessionMiddleware,
        secret_key=secret_key(ctx.settings) + ":staff-session",
        session_cookie=COOKIE_NAME,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/staff",
        same_site="lax",
        https_only=staff.secure_cookies,
    )
    return [
        Route("/staff/static/staff.css", stylesheet, methods=GET, name="staff_stylesheet"),
        Mount("/staff", routes=inner, middleware=[session], name="staff"),
    ]

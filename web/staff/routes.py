"""The staff app's URL map, mounted at /staff with its own session cookie.

`routes(ctx)` is what web/app.py's ROUTE_MODULES asks for. Route names are `staff:<name>`
(e.g. `path_for('staff:campaign', slug=...)` in templates).
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from drip.config import secret_key
from web.context import WebContext
from drip.permissions import Perm as P
from web.staff import (
    account, audit, bulk, campaigns, dashboard, draft_tools, newsletters, settings, signoff, signup, subscribers, team,
    webhooks,
)
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


    step = "/campaigns/{slug}/steps/{position:int}"
    inner = [
        Route("/", page(dashboard.dashboard, perm=P.LOGGED_IN), methods=GET, name="home"),
        Route("/login", page(account.login, perm=P.PUBLIC), methods=BOTH, name="login"),
        Route("/logout", page(account.logout, perm=P.LOGGED_IN), methods=POST, name="logout"),
        # campaigns
        Route("/campaigns", page(campaigns.campaign_list, perm=P.CAMPAIGNS_READ), methods=GET, name="campaigns"),
        Route("/campaigns/upload", page(campaigns.campaign_upload, perm=P.CAMPAIGNS_EDIT, uploads=True), methods=POST, name="campaign_upload"),
        Route("/campaigns/{slug}", page(campaigns.campaign_page, perm=P.CAMPAIGNS_READ), methods=GET, name="campaign"),
        Route("/campaigns/{slug}/status", page(campaigns.campaign_status, perm=P.CAMPAIGNS_PUBLISH), methods=POST, name="campaign_status"),
        Route("/campaigns/{slug}/enroll", page(bulk.campaign_enroll_tag, perm=P.SUBSCRIBERS_WRITE), methods=POST, name="campaign_enroll_tag"),
        Route("/campaigns/{slug}/tags", page(bulk.campaign_link_tag, perm=P.CAMPAIGNS_EDIT), methods=POST, name="campaign_link_tag"),
        Route("/campaigns/{slug}/bulk/{job}", page(bulk.campaign_bulk, perm=P.SUBSCRIBERS_WRITE), methods=GET, name="campaign_bulk"),
        Route("/campaigns/{slug}/exits", page(campaigns.campaign_exits, perm=P.CAMPAIGNS_EDIT), methods=POST, name="campaign_exits"),
        Route("/campaigns/{slug}/cadence", page(campaigns.campaign_cadence, perm=P.CAMPAIGNS_EDIT), methods=POST,
              name="campaign_cadence"),
        Route("/campaigns/{slug}/submit", page(signoff.campaign_submit, perm=P.CAMPAIGNS_EDIT), methods=POST,
              name="campaign_submit"),
        Route("/campaigns/{slug}/review", page(signoff.campaign_review, perm=P.CAMPAIGNS_READ), methods=GET,
              name="campaign_review"),
        Route("/campaigns/{slug}/approve", page(signoff.campaign_approve, perm=P.CAMPAIGNS_PUBLISH), methods=POST,
              name="campaign_approve"),
        Route("/campaigns/{slug}/return", page(signoff.campaign_return, perm=P.CAMPAIGNS_PUBLISH), methods=POST,
              name="campaign_return"),
        Route("/campaigns/{slug}/draft", page(draft_tools.draft_change, perm=P.CAMPAIGNS_EDIT), methods=POST,
              name="campaign_draft"),
        Route("/campaigns/{slug}/retry", page(campaigns.campaign_retry, perm=P.CAMPAIGNS_PUBLISH), methods=POST, name="campaign_retry"),
        Route(step, page(campaigns.step_page, perm=P.CAMPAIGNS_READ), methods=GET, name="step"),
        Route(step, page(campaigns.step_page, perm=P.CAMPAIGNS_EDIT), methods=POST, name="step_save"),
        Route(step + "/preview", page(campaigns.step_preview, perm=P.CAMPAIGNS_READ), methods=GET, name="step_preview"),
        Route(step + "/email", page(campaigns.step_email, perm=P.CAMPAIGNS_READ), methods=GET, name="step_email"),
        Route(step + "/test", page(campaigns.step_test, perm=P.CAMPAIGNS_EDIT), methods=POST, name="step_test"),
        Route(step + "/rules", page(campaigns.step_rules, perm=P.CAMPAIGNS_EDIT), methods=POST, name="step_rules"),
        # subscribers
        Route("/subscribers", page(subscribers.subscriber_list, perm=P.SUBSCRIBERS_READ), methods=GET, name="subscribers"),
        Route("/subscribers/import", page(subscribers.subscriber_import, perm=P.SUBSCRIBERS_WRITE, uploads=True), methods=POST,
              name="subscriber_import"),
        Route("/subscribers/add", page(subscribers.subscriber_add, perm=P.SUBSCRIBERS_WRITE), methods=POST, name="subscriber_add"),
        Route("/subscribers/{id:int}", page(subscribers.subscriber_page, perm=P.SUBSCRIBERS_READ), methods=GET, name="subscriber"),
        Route("/subscribers/{id:int}/edit", page(subscribers.subscriber_edit, perm=P.SUBSCRIBERS_WRITE), methods=POST, name="subscriber_edit"),
        Route("/subscribers/{id:int}/tags", page(subscribers.subscriber_tags, perm=P.SUBSCRIBERS_WRITE), methods=POST, name="subscriber_tags"),
        Route("/subscribers/{id:int}/enroll", page(subscribers.subscriber_enroll, perm=P.SUBSCRIBERS_WRITE), methods=POST,
              name="subscriber_enroll"),
        Route("/subscribers/{id:int}/attributes", page(subscribers.subscriber_attributes, perm=P.SUBSCRIBERS_WRITE), methods=POST,
              name="subscriber_attributes"),
        Route("/subscribers/{id:int}/stop", page(subscribers.subscriber_stop, perm=P.SUBSCRIBERS_WRITE), methods=POST, name="subscriber_stop"),
        Route("/subscribers/{id:int}/unsubscribe", page(subscribers.subscriber_unsubscribe, perm=P.SUBSCRIBERS_WRITE), methods=POST,
              name="subscriber_unsubscribe"),
        Route("/subscribers/{id:int}/suppress", page(subscribers.subscriber_suppress, perm=P.SUBSCRIBERS_WRITE), methods=POST,
              name="subscriber_suppress"),
        Route("/subscribers/{id:int}/export", page(subscribers.subscriber_export_page, perm=P.SUBSCRIBERS_EXPORT),
              methods=GET, name="subscriber_export"),
        Route("/subscribers/{id:int}/export.json", page(subscribers.subscriber_export_json, perm=P.SUBSCRIBERS_EXPORT),
              methods=GET, name="subscriber_export_json"),
        Route("/subscribers/{id:int}/erase", page(subscribers.subscriber_erase, perm=P.SUBSCRIBERS_ERASE), methods=POST,
              name="subscriber_erase"),
        # sign-up form
        Route("/signup", page(signup.signup_page, perm=P.SETTINGS), methods=GET, name="signup"),
        Route("/signup", page(signup.signup_set, perm=P.SETTINGS), methods=POST, name="signup_set"),
        # newsletters
        Route("/newsletters", page(newsletters.newsletter_list, perm=P.NEWSLETTERS_READ), methods=GET, name="newsletters"),
        Route("/newsletters/create", page(newsletters.newsletter_create, perm=P.NEWSLETTERS_EDIT, uploads=True), methods=POST,
              name="newsletter_create"),
        Route("/newsletters/{slug}", page(newsletters.newsletter_page, perm=P.NEWSLETTERS_READ), methods=GET, name="newsletter"),
        Route("/newsletters/{slug}/email", page(newsletters.newsletter_email, perm=P.NEWSLETTERS_READ), methods=GET, name="newsletter_email"),
        Route("/newsletters/{slug}/schedule", page(newsletters.newsletter_schedule, perm=P.NEWSLETTERS_SEND), methods=POST,
              name="newsletter_schedule"),
        Route("/newsletters/{slug}/cancel", page(newsletters.newsletter_cancel, perm=P.NEWSLETTERS_SEND), methods=POST,
              name="newsletter_cancel"),
        Route("/newsletters/{slug}/pause", page(newsletters.newsletter_pause, perm=P.NEWSLETTERS_SEND), methods=POST,
              name="newsletter_pause"),
        Route("/newsletters/{slug}/test", page(newsletters.newsletter_test, perm=P.NEWSLETTERS_EDIT), methods=POST, name="newsletter_test"),
        # outbound webhooks (settings: they send patient events to other systems)
        Route("/webhooks", page(webhooks.webhooks_page, perm=P.SETTINGS), methods=GET, name="webhooks"),
        Route("/webhooks/add", page(webhooks.webhook_add, perm=P.SETTINGS), methods=POST, name="webhook_add"),
        Route("/webhooks/{id:int}/rotate", page(webhooks.webhook_rotate, perm=P.SETTINGS), methods=POST,
              name="webhook_rotate"),
        Route("/webhooks/{id:int}/active", page(webhooks.webhook_active, perm=P.SETTINGS), methods=POST,
              name="webhook_active"),
        Route("/webhooks/deliveries/{delivery:int}/replay", page(webhooks.webhook_replay, perm=P.SETTINGS),
              methods=POST, name="webhook_replay"),
        # settings (owners): clinic identity and branding, the logo, lists, API tokens
        Route("/settings", page(settings.settings_page, perm=P.SETTINGS), methods=GET, name="settings"),
        Route("/settings", page(settings.settings_save, perm=P.SETTINGS), methods=POST, name="settings_save"),
        Route("/settings/preview", page(settings.settings_preview, perm=P.SETTINGS), methods=BOTH,
              name="settings_preview"),
        Route("/settings/signoff", page(settings.settings_signoff, perm=P.SETTINGS), methods=POST,
              name="settings_signoff"),
        Route("/settings/retention", page(settings.settings_retention, perm=P.SETTINGS), methods=POST,
              name="settings_retention"),
        Route("/settings/logo", page(settings.settings_logo, perm=P.SETTINGS, uploads=True), methods=POST,
              name="settings_logo"),
        Route("/settings/logo/remove", page(settings.settings_logo_remove, perm=P.SETTINGS), methods=POST,
              name="settings_logo_remove"),
        Route("/lists", page(settings.lists_page, perm=P.SETTINGS), methods=GET, name="lists"),
        Route("/lists/add", page(settings.list_add, perm=P.SETTINGS), methods=POST, name="list_add"),
        Route("/lists/{id:int}", page(settings.list_edit, perm=P.SETTINGS), methods=POST, name="list_edit"),
        Route("/lists/{id:int}/delete", page(settings.list_delete, perm=P.SETTINGS), methods=POST,
              name="list_delete"),
        Route("/tokens", page(settings.tokens_page, perm=P.SETTINGS), methods=GET, name="tokens"),
        Route("/tokens/create", page(settings.token_create, perm=P.SETTINGS), methods=POST, name="token_create"),
        Route("/tokens/{id:int}/revoke", page(settings.token_revoke, perm=P.SETTINGS), methods=POST,
              name="token_revoke"),
        # the team: staff users, roles, invitations (owners); the audit log
        Route("/team", page(team.team_page, perm=P.STAFF_MANAGE), methods=GET, name="team"),
        Route("/team/invite", page(team.team_invite, perm=P.STAFF_MANAGE), methods=POST, name="team_invite"),
        Route("/team/{id:int}/role", page(team.team_role, perm=P.STAFF_MANAGE), methods=POST, name="team_role"),
        Route("/invite/{token}", page(team.invite_accept, perm=P.PUBLIC), methods=BOTH, name="invite"),
        Route("/audit", page(audit.audit_page, perm=P.AUDIT_READ), methods=GET, name="audit"),
        Route("/audit.csv", page(audit.audit_csv, perm=P.AUDIT_READ), methods=GET, name="audit_csv"),
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

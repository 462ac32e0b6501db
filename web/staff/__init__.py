"""The staff web app (/staff): campaigns, subscribers and newsletters, behind a login.

Server-rendered pages (Starlette + Jinja2, one stylesheet, no script). See web/staff/routes.py
for the URL map, web/staff/auth.py for sessions and passwords, web/staff/base.py for what every
page checks (login, CSRF, origin) and the headers it sends.
"""

from web.staff.routes import routes

__all__ = ["routes"]

"""`<script>alert(1)</script>` typed or uploaded anywhere is shown as text on every staff page."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser as HTMLParser
from sqlalchemy import select

from drip.models import Campaign, Subscriber
from tests.web.staff.conftest import post_form
from tests.web.staff.data import seed_staff

SCRIPT = "<script>alert(1)</script>"
ATTACK = f'"><{SCRIPT[1:]}'  # also tries to break out of an attribute value
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"

ARTICLE = f"""Acupuncture {SCRIPT} Guide

An introduction {SCRIPT} for new patients.

1. Release {SCRIPT} of Endorphins:
Endorphins {SCRIPT} are the body's own painkillers.

2. Muscle Relaxation:
Tight muscles {ATTACK} let go.
"""


def assert_escaped(html: str, where: str) -> None:
    if where.endswith("/email"):
        return assert_inert_email(html, where)
    assert SCRIPT not in html and "<script" not in html, f"raw script on {where}"
    assert ESCAPED in html, f"the text is not shown (escaped) on {where}"


def assert_inert_email(html: str, where: str) -> None:
    """The rendered email (from campaigns.render): parsed, it has no script element and no event
    handler, and the payload is there as text. (MJML writes the subject into an aria-label attribute
    with `<` unescaped, which is valid and inert inside a quoted attribute, so a plain substring test
    would be wrong here.)"""
    tree = HTMLParser(html)
    assert not tree.css("script"), f"a script element in {where}"
    for node in tree.css("*"):
        assert not any(name.lower().startswith("on") for name in node.attributes), f"an event handler in {where}"
    assert "alert(1)" in tree.body.text(), f"the text is not shown on {where}"


def test_article_title_and_body_are_escaped_everywhere(runtime, staff):
    seed_staff(runtime)
    r = post_form(staff, "/staff/campaigns", "/staff/campaigns/upload",
                  files={"article": ("evil.txt", ARTICLE.encode(), "text/plain")})
    assert r.status_code == 303, r.text
    campaign = r.headers["location"]
    with runtime.sessions() as s:
        assert s.scalar(select(Campaign.title).where(Campaign.slug == campaign.rsplit("/", 1)[1])) == f"Acupuncture {SCRIPT} Guide"
    pages = ["/staff/campaigns", campaign, f"{campaign}/steps/1", f"{campaign}/steps/2", f"{campaign}/steps/2/preview",
             f"{campaign}/steps/2/preview?device=mobile", f"{campaign}/steps/2/email", f"{campaign}/steps/3"]
    for page in pages:
        assert_escaped(staff.get(page).text, page)
    step3 = staff.get(f"{campaign}/steps/3").text
    assert '"><script' not in step3 and "&#34;&gt;&lt;script&gt;" in step3


def test_step_subject_is_escaped_everywhere(runtime, staff):
    ids = seed_staff(runtime)
    step = "/staff/campaigns/onboarding/steps/2"
    r = post_form(staff, step, step, data={"subject": ATTACK, "preheader": SCRIPT, "title": "T", "body": "B", "delay": "1d"})
    assert r.status_code == 303
    for page in ["/staff/campaigns/onboarding", step, f"{step}/preview", f"{step}/email",
                 f"/staff/subscribers/{ids.ann_id}"]:
        html = staff.get(page).text
        assert_escaped(html, page)
        assert '"><script' not in html


def test_subscriber_name_and_tags_are_escaped_everywhere(runtime, staff):
    seed_staff(runtime)
    r = post_form(staff, "/staff/subscribers", "/staff/subscribers/add",
                  data={"email": "mallory@example.org", "name": ATTACK, "tags": f"tag{SCRIPT}"})
    assert r.status_code == 303
    with runtime.sessions() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email_key == "mallory@example.org"))
    for page in ["/staff/subscribers", f"/staff/subscribers/{sid}", "/staff/subscribers?q=mallory",
                 "/staff/subscribers?tag=" + f"tag{SCRIPT}", "/staff/newsletters"]:
        html = staff.get(page).text
        assert_escaped(html, page)
        assert '"><script' not in html


def test_csv_import_errors_are_escaped(runtime, staff):
    body = f"email,name\n{SCRIPT},x\n".encode()
    r = post_form(staff, "/staff/subscribers", "/staff/subscribers/import", files={"csv": ("p.csv", body, "text/csv")})
    assert_escaped(r.text, "the import report")


def test_uploaded_file_name_is_escaped(runtime, staff):
    r = post_form(staff, "/staff/campaigns", "/staff/campaigns/upload",
                  files={"article": ("<img src=x onerror=alert(1)>.pdf", b"%PDF", "application/pdf")})
    assert r.status_code == 400
    assert "<img src=x" not in r.text and "&lt;img src=x onerror=alert(1)&gt;.pdf: unsupported file type" in r.text


def test_newsletter_from_an_article_is_escaped(runtime, staff):
    seed_staff(runtime)
    r = post_form(staff, "/staff/newsletters", "/staff/newsletters/create", data={"source": "article", "list": "newsletter"},
                  files={"article": ("evil.txt", ARTICLE.encode(), "text/plain")})
    assert r.status_code == 303
    for page in [r.headers["location"], r.headers["location"] + "/email", "/staff/newsletters"]:
        assert_escaped(staff.get(page).text, page)

"""Login, sessions, logout, redirects to the login page, and the login rate limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.web.staff.conftest import STAFF_EMAIL, STAFF_PASSWORD, both_databases, csrf_of, login, post_form
from web.staff import auth
from web.staff.auth import safe_next
from web.staff.ratelimit import LoginLimiter

PAGES = [
    "/staff/campaigns", "/staff/campaigns/onboarding", "/staff/campaigns/onboarding/steps/1",
    "/staff/campaigns/onboarding/steps/1/preview", "/staff/campaigns/onboarding/steps/1/email",
    "/staff/subscribers", "/staff/subscribers/1", "/staff/newsletters", "/staff/newsletters/december",
    "/staff/newsletters/december/email",
]


@pytest.mark.parametrize("path", PAGES)
def test_staff_pages_redirect_to_login_with_next(anon, path):
    r = anon.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/staff/login?next={path}"


def test_next_keeps_the_query_string(anon):
    r = anon.get("/staff/subscribers?q=ann&status=active", follow_redirects=False)
    assert r.headers["location"] == "/staff/login?next=/staff/subscribers%3Fq%3Dann%26status%3Dactive"


@both_databases
def test_login_lands_on_next_and_sets_a_safe_cookie(anon, staff_user):
    r = login(anon, next_path="/staff/subscribers")
    assert r.status_code == 303 and r.headers["location"] == "/staff/subscribers"
    cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("drip_staff="))
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "secure" in flags and "path=/staff" in flags
    assert anon.get("/staff/subscribers").status_code == 200


def test_cookie_is_not_secure_over_plain_http(make_client, staff_user):
    client = make_client(base_url="http://127.0.0.1:8000")
    r = login(client)
    cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("drip_staff="))
    assert "secure" not in cookie.lower()


@pytest.mark.parametrize("next_path", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "/staffevil",
                                       "/u/abc", "javascript:alert(1)"])
def test_next_outside_staff_goes_to_campaigns(anon, staff_user, next_path):
    r = login(anon, next_path=next_path)
    assert r.status_code == 303 and r.headers["location"] == "/staff/campaigns"


@given(st.text(max_size=60))
def test_safe_next_only_returns_local_staff_paths(value):
    out = safe_next(value)
    assert out == "/staff/campaigns" or out == value
    assert out.startswith("/staff") and not out.startswith("//") and "\\" not in out
    assert out == "/staff" or out[len("/staff")] in "/?#"
    assert all(ord(c) >= 0x20 for c in out)


@pytest.mark.parametrize("email, password", [(STAFF_EMAIL, "wrong password!"), ("nobody@clinic.example.org", STAFF_PASSWORD),
                                             ("not an address", STAFF_PASSWORD)])
def test_failed_login_is_one_generic_message(anon, staff_user, email, password):
    r = login(anon, email=email, password=password)
    assert r.status_code == 200
    assert "That email and password do not match an account." in r.text
    assert "unknown" not in r.text.lower() and "not valid" not in r.text.lower()
    assert anon.get("/staff/campaigns", follow_redirects=False).status_code == 303


def test_login_form_without_or_with_a_wrong_csrf_token_is_refused(anon, staff_user):
    anon.get("/staff/login")
    for token in (None, "forged"):
        data = {"email": STAFF_EMAIL, "password": STAFF_PASSWORD}
        if token:
            data["csrf"] = token
        r = anon.post("/staff/login", data=data, follow_redirects=False)
        assert r.status_code == 403
    assert anon.get("/staff/campaigns", follow_redirects=False).status_code == 303


def test_session_is_rotated_at_login(anon, staff_user):
    """A form token from before the login (bound to the old session id) is no good after it."""
    before = csrf_of(anon.get("/staff/login").text)
    old_cookie = anon.cookies.get("drip_staff")
    assert login(anon).status_code == 303
    assert anon.cookies.get("drip_staff") != old_cookie
    r = anon.post("/staff/subscribers/add", data={"csrf": before, "email": "x@example.org"}, follow_redirects=False)
    assert r.status_code == 403


def test_logout_ends_the_session_even_for_a_copied_cookie(staff):
    stolen = staff.cookies.get("drip_staff")
    r = post_form(staff, "/staff/campaigns", "/staff/logout")
    assert r.status_code == 303 and r.headers["location"] == "/staff/login"
    assert "You are logged out." in staff.get("/staff/login").text
    assert staff.get("/staff/campaigns", follow_redirects=False).status_code == 303
    # The copied cookie in another browser, same server process: refused (see web/staff/auth.py).
    with TestClient(staff.app, base_url="https://clinic.test") as other:
        other.cookies.set("drip_staff", stolen, domain="clinic.test", path="/staff")
        assert other.get("/staff/campaigns", follow_redirects=False).status_code == 303


def test_logout_is_post_only(staff):
    assert staff.get("/staff/logout").status_code == 405
    assert staff.get("/staff/campaigns", follow_redirects=False).status_code == 200


def test_new_password_ends_existing_sessions(staff, runtime):
    with runtime.sessions.begin() as s:
        auth.add_staff(s, STAFF_EMAIL, "another long password", update=True)
    assert staff.get("/staff/campaigns", follow_redirects=False).status_code == 303


def test_sessions_end_after_twelve_hours(staff, clock):
    clock.now += timedelta(hours=11, minutes=59)
    assert staff.get("/staff/campaigns", follow_redirects=False).status_code == 200
    clock.now += timedelta(minutes=2)
    assert staff.get("/staff/campaigns", follow_redirects=False).status_code == 303


def test_rate_limit_after_five_failures(anon, staff_user, clock):
    for _ in range(5):
        assert login(anon, password="wrong password!").status_code == 200
    r = login(anon)  # even the right password waits now
    assert r.status_code == 429 and "Too many failed attempts" in r.text
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    assert anon.get("/staff/campaigns", follow_redirects=False).status_code == 303
    # Another account from the same address is not locked by these failures.
    assert login(anon, email="other@clinic.example.org", password="wrong password!").status_code == 200
    clock.now += timedelta(minutes=15)
    assert login(anon).status_code == 303


def test_limiter_window_slides_and_success_clears():
    from datetime import datetime, timezone

    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    m = timedelta(minutes=1)
    lim = LoginLimiter(per_account=3, per_ip=5)
    for i in range(3):
        assert lim.retry_after("a@x.org", "1.2.3.4", t + i * m) is None
        lim.failed("a@x.org", "1.2.3.4", t + i * m)
    assert lim.retry_after("A@X.org", "1.2.3.4", t + 3 * m) == 12 * 60  # until the first failure is 15 min old
    assert lim.retry_after("a@x.org", "5.6.7.8", t + 3 * m) is None  # per address + IP
    lim.failed("b@x.org", "1.2.3.4", t + 3 * m)
    lim.failed("c@x.org", "1.2.3.4", t + 3 * m)  # 5 failures from this IP in all
    assert lim.retry_after("d@x.org", "1.2.3.4", t + 3 * m) is not None
    assert lim.retry_after("a@x.org", "1.2.3.4", t + 15 * m) is None  # the first failure aged out
    one = LoginLimiter(per_account=2)
    one.failed("a@x.org", "1.2.3.4", t)
    one.failed("a@x.org", "1.2.3.4", t)
    assert one.retry_after("a@x.org", "1.2.3.4", t) is not None
    one.succeeded("a@x.org", "1.2.3.4")
    assert one.retry_after("a@x.org", "1.2.3.4", t) is None


def test_limiter_memory_is_bounded():
    from datetime import datetime, timezone

    lim = LoginLimiter(max_keys=10)
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(100):
        lim.failed(f"u{i}@x.org", f"10.0.0.{i % 250}", t)
    assert len(lim._failures) <= 10


def test_passwords_are_argon2_and_rules_hold(runtime):
    with runtime.sessions.begin() as s:
        user, created = auth.add_staff(s, "Ann@Clinic.example.org", "long enough password")
        assert created and user.email == "ann@clinic.example.org"
        assert user.password_hash.startswith("$argon2id$") and "long enough" not in user.password_hash
        assert auth.authenticate(s, "ANN@clinic.example.org", "long enough password") is not None
        assert auth.authenticate(s, "ann@clinic.example.org", "long enough passwor") is None
    with pytest.raises(auth.InputError, match="at least 10"):
        auth.check_password_rules("short")
    assert auth.verify_password(None, "anything at all") is False
    assert auth.verify_password("not a hash", "anything at all") is False


def test_posts_without_a_login_change_nothing(runtime, anon):
    """Even with a valid form token of an anonymous session, no staff action runs before login."""
    from tests.web.seed import snapshot
    from tests.web.staff.data import seed_staff

    ids = seed_staff(runtime)
    token = csrf_of(anon.get("/staff/login").text)
    before = snapshot(runtime)
    for path, data in [("/staff/campaigns/onboarding/status", {"action": "archive"}),
                       ("/staff/subscribers/add", {"email": "x@example.org"}),
                       (f"/staff/subscribers/{ids.ann_id}/suppress", {}),
                       ("/staff/newsletters/december/schedule", {"mode": "once", "at": "2026-12-20 09:00"})]:
        r = anon.post(path, data={"csrf": token, **data}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/staff/login"
    assert snapshot(runtime) == before

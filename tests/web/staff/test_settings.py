"""Settings in the web app (owners): clinic identity with validation and a preview of unsaved
values, the logo checked by content, lists, API tokens; every change audited, and the worker's
next email carries the new branding."""

from __future__ import annotations

import email
import struct
import zlib
from datetime import timedelta
from email import policy

import pytest
from sqlalchemy import select

from delivery.backends.outbox import OutboxBackend
from delivery.dispatcher import Dispatcher
from drip import clinic_settings as cs
from drip.errors import InputError
from drip.models import ApiToken, AuditEntry, ClinicAsset, ClinicSetting, Tag
from drip.runtime import Runtime
from tests.web.conftest import Clock
from tests.web.seed import T0
from tests.web.staff.conftest import csrf_of, post_form
from tests.web.staff.data import seed_staff

GOOD = {
    "name": "Harbor Physio", "address": "1 Quay Road, Bath BA1 1AA, UK", "website": "https://harbor.example",
    "phone": "01225 555 000", "brand_color": "#aa3311", "from_email": "hello@harbor.example",
    "from_name": "Harbor Physio", "reply_to": "desk@harbor.example", "booking_url": "https://harbor.example/book",
    "cta_label": "Book now",
}


def png(width: int = 10, height: int = 10) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def stored(runtime) -> dict:
    with runtime.sessions() as s:
        return {r.key: r.value for r in s.scalars(select(ClinicSetting))}


def audits(runtime, prefix: str) -> list[AuditEntry]:
    with runtime.sessions() as s:
        return [a for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id)) if a.action.startswith(prefix)]


# -- validation: one line naming the field, nothing saved

@pytest.mark.parametrize("key, value, message", [
    ("name", "", "Clinic name: required"),
    ("name", "Evil\r\nBcc: x@y.z", "Clinic name: line breaks"),
    ("from_name", "A\nB", "From name: line breaks"),
    ("address", "", "Postal address: required"),
    ("website", "javascript:alert(1)", "Website: must be an http(s) address"),
    ("booking_url", "ftp://clinic.example/book", "Booking link: must be an http(s) address"),
    ("brand_color", "red", "Brand colour: must be a hex colour"),
    ("brand_color", "#12345", "Brand colour: must be a hex colour"),
    ("from_email", "not-an-address", "From address: 'not-an-address' is not an email address"),
    ("reply_to", "desk@harbor.example\r\nBcc: a@b.c", "Reply-to address: line breaks"),
    ("cta_label", "", "Booking button label: required when there is a booking link"),
    ("phone", "1" * 41, "Phone: at most 40 characters"),
])
def test_each_bad_value_is_refused_with_one_line_and_nothing_is_saved(runtime, staff, key, value, message):
    before = stored(runtime)
    r = post_form(staff, "/staff/settings", "/staff/settings", {**GOOD, key: value})
    assert r.status_code == 400
    alert = r.text.split('id="settings-error">')[1].split("</p>")[0]
    assert message in alert.replace("&#39;", "'") and "\n" not in alert and "Traceback" not in r.text
    assert stored(runtime) == before and audits(runtime, "settings.") == []


def test_validate_cleans_and_keeps_an_empty_optional_field():
    out = cs.validate({**GOOD, "brand_color": "#AA3311", "booking_url": "", "website": "", "name": "  Harbor  "})
    assert out["brand_color"] == "#aa3311" and out["booking_url"] == "" and out["name"] == "Harbor"
    with pytest.raises(InputError):
        cs.validate({**GOOD, "website": "https://x.example/\"onmouseover=1"})


def test_saving_stores_audits_before_after_and_the_pages_use_it(runtime, staff):
    r = post_form(staff, "/staff/settings", "/staff/settings", GOOD)
    assert r.status_code == 303
    assert stored(runtime)["name"] == "Harbor Physio" and stored(runtime)["_version"] == "1"
    [entry] = audits(runtime, "settings.clinic")
    assert entry.before["name"] == "Riverside Acupuncture & Wellness" and entry.after["name"] == "Harbor Physio"
    assert entry.after["brand_color"] == "#aa3311" and "timezone" not in entry.after
    page = staff.get("/staff/settings").text
    assert 'value="Harbor Physio"' in page and "<strong>Harbor Physio</strong>" in page  # the header too
    assert "--brand: #aa3311" in staff.get("/staff/static/staff.css").text  # the staff pages' colour
    assert "#aa3311" in staff.get("/static/site.css").text.lower()  # and the patient pages'
    assert post_form(staff, "/staff/settings", "/staff/settings", GOOD).status_code == 303
    assert len(audits(runtime, "settings.clinic")) == 1 and stored(runtime)["_version"] == "1"  # no change: no row


def test_preview_shows_unsaved_colour_and_name_and_saves_nothing(runtime, staff):
    saved = staff.get("/staff/settings/preview").text
    assert "Riverside Acupuncture" in saved and "#aa3311" not in saved.lower()
    r = post_form(staff, "/staff/settings", "/staff/settings/preview", {**GOOD, "name": "Preview Clinic"})
    assert r.status_code == 200 and "Preview Clinic" in r.text and "#aa3311" in r.text.lower()
    assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
    assert "script" not in r.headers["content-security-policy"]
    assert stored(runtime) == {} and audits(runtime, "settings.") == []
    bad = post_form(staff, "/staff/settings", "/staff/settings/preview", {**GOOD, "brand_color": "blue"})
    assert bad.status_code == 400 and "Brand colour" in bad.text
    page = staff.get("/staff/settings").text
    assert 'formtarget="settings-preview"' in page and 'name="settings-preview"' in page


def test_the_workers_next_email_carries_the_new_branding(runtime, staff, tmp_path):
    seed_staff(runtime)
    # The worker: its own Runtime on the same database, as another process has, built before the change.
    worker_rt = Runtime(settings=runtime.settings.with_(outbox_dir=tmp_path / "out"), engine=runtime.engine,
                        sessions=runtime.sessions)
    dispatcher = Dispatcher(worker_rt, OutboxBackend(worker_rt.settings), clock=Clock(T0 - timedelta(days=1)),
                            worker_id="w")
    assert dispatcher.tick().sent == 0
    assert post_form(staff, "/staff/settings", "/staff/settings", GOOD).status_code == 303
    dispatcher.clock = Clock(T0 + timedelta(days=3))
    assert dispatcher.tick().sent >= 1
    [path, *_] = sorted((tmp_path / "out").glob("*.eml"))
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert msg["From"] == "Harbor Physio <hello@harbor.example>" and msg["Reply-To"] == "desk@harbor.example"
    html = msg.get_body(("html",)).get_content()
    assert "Harbor Physio" in html and "#aa3311" in html.lower() and "1 Quay Road" in html
    assert "https://harbor.example/book" in html and "Riverside" not in html
    assert dispatcher.refresh_clinic() is False  # nothing changed since: one read, no rebuild


# -- the logo

def test_a_png_named_exe_is_taken_by_its_content_and_served_from_our_url(runtime, staff, anon):
    data = png(120, 40)
    r = post_form(staff, "/staff/settings", "/staff/settings/logo",
                  files={"logo": ("logo.exe", data, "application/octet-stream")})
    assert r.status_code == 303
    url = stored(runtime)["logo_url"]
    assert url.startswith("https://clinic.test/clinic/logo/") and url.endswith(".png")
    got = anon.get(url.removeprefix("https://clinic.test"))
    assert got.status_code == 200 and got.content == data and got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert anon.get("/clinic/logo/0000000000000000.png").status_code == 404
    [entry] = audits(runtime, "settings.logo")
    assert entry.before == {"logo_url": ""} and entry.after == {"logo_url": url}
    assert f'src="{url}"' in staff.get("/staff/settings/preview").text  # the email shows it


@pytest.mark.parametrize("name, data, message", [
    ("logo.png", b"<html><script>alert(1)</script></html>", "not a PNG, JPEG, GIF or WebP image"),
    ("big.png", png(10, 10) + b"\x00" * (512 * 1024), "at most 512 KB"),
    ("huge.png", png(5000, 1), "5000x1 pixels"),
    ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "damaged"),
])
def test_bad_logos_are_refused_and_nothing_is_stored(runtime, staff, name, data, message):
    r = post_form(staff, "/staff/settings", "/staff/settings/logo", files={"logo": (name, data, "image/png")})
    assert r.status_code == 400 and message in r.text
    with runtime.sessions() as s:
        assert s.scalar(select(ClinicAsset)) is None
    assert stored(runtime) == {} and audits(runtime, "settings.") == []


def test_image_kinds_by_magic_bytes():
    assert cs.image_kind(b"GIF89a" + struct.pack("<HH", 3, 4)) == ("image/gif", "gif")
    assert cs.image_size(b"GIF89a" + struct.pack("<HH", 3, 4), "image/gif") == (3, 4)
    webp = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (99).to_bytes(3, "little") + (49).to_bytes(3, "little")
    assert cs.image_kind(webp) == ("image/webp", "webp") and cs.image_size(webp, "image/webp") == (100, 50)
    jpeg = b"\xff\xd8\xff\xe0" + struct.pack(">H", 4) + b"JF" + b"\xff\xc0" + struct.pack(">HBHH", 11, 8, 30, 60) + b"\x00" * 8
    assert cs.image_kind(jpeg) == ("image/jpeg", "jpg") and cs.image_size(jpeg, "image/jpeg") == (60, 30)
    assert cs.image_kind(b"MZ\x90\x00") is None


# -- lists

def test_lists_get_a_description_and_a_shown_flag_the_preference_centre_follows(runtime, staff):
    r = post_form(staff, "/staff/lists", "/staff/lists/add", {"name": "Back-Care", "description": "Back care tips",
                                                             "shown": "on"})
    assert r.status_code == 303
    with runtime.sessions() as s:
        tag = s.scalar(select(Tag).where(Tag.name == "back-care"))
        assert tag.description == "Back care tips" and tag.shown is True
        tag_id = tag.id
    assert visible(runtime) == ["back-care"]
    r = post_form(staff, "/staff/lists", f"/staff/lists/{tag_id}", {"description": "Back care tips"})  # unticked
    assert r.status_code == 303 and visible(runtime) == []
    [edit] = audits(runtime, "list.edit")
    assert edit.before == {"shown": True} and edit.after == {"shown": False}
    bad = post_form(staff, "/staff/lists", "/staff/lists/add", {"name": "two words"})
    assert bad.status_code == 400 and "Name:" in bad.text
    assert post_form(staff, "/staff/lists", f"/staff/lists/{tag_id}/delete").status_code == 303
    with runtime.sessions() as s:
        assert s.get(Tag, tag_id) is None
    assert [a.action for a in audits(runtime, "list.")] == ["list.add", "list.edit", "list.delete"]


def visible(runtime) -> list[str]:
    from drip.models import Subscriber  # noqa: F401
    from subscribers import unsubscribe
    from tests.factories import make_subscriber

    with runtime.sessions.begin() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email == "lists@example.org")) or \
            make_subscriber(s, "lists@example.org")
        return [m.name for m in unsubscribe.public_lists(s, sub)]


def test_a_list_with_patients_is_not_deleted(runtime, staff):
    ids = seed_staff(runtime)
    r = post_form(staff, "/staff/lists", f"/staff/lists/{ids.tag_id}/delete")
    assert r.status_code == 400 and "hide it from patients instead" in r.text
    with runtime.sessions() as s:
        assert s.get(Tag, ids.tag_id) is not None


# -- API tokens

def test_a_token_is_shown_once_works_against_the_api_and_stops_when_revoked(runtime, staff, anon):
    page = staff.get("/staff/tokens")
    r = staff.post("/staff/tokens/create", data={"csrf": csrf_of(page.text), "name": "booking-system",
                                                 "scope": ["read"]}, follow_redirects=False)
    assert r.status_code == 200 and "not shown again" in r.text
    token = r.text.split('id="new-token">')[1].split("<code>")[1].split("</code>")[0]
    assert token and token not in staff.get("/staff/tokens").text  # shown once
    with runtime.sessions() as s:
        row = s.scalar(select(ApiToken))
        assert row.scopes == "read" and token not in (row.token_hash, row.name)
        token_id = row.id
    auth = {"Authorization": f"Bearer {token}"}
    assert anon.get("/api/v1/campaigns", headers=auth).status_code == 200
    assert anon.post("/api/v1/subscribers", headers=auth, json={"email": "x@example.org"}).status_code == 403
    listing = staff.get("/staff/tokens").text
    assert "booking-system" in listing and "never" not in listing.split(f'id="token-{token_id}"')[1].split("</tr>")[0]
    assert post_form(staff, "/staff/tokens", f"/staff/tokens/{token_id}/revoke").status_code == 303
    assert anon.get("/api/v1/campaigns", headers=auth).status_code == 401
    assert [a.action for a in audits(runtime, "token.")] == ["token.create", "token.revoke"]
    assert token not in str([(a.before, a.after) for a in audits(runtime, "token.")])


def test_a_token_needs_a_name_and_a_known_scope(runtime, staff):
    page = staff.get("/staff/tokens")
    r = staff.post("/staff/tokens/create", data={"csrf": csrf_of(page.text), "name": "x", "scope": ["root"]})
    assert r.status_code == 400 and "Scopes: unknown scope 'root'" in r.text.replace("&#39;", "'")
    r = staff.post("/staff/tokens/create", data={"csrf": csrf_of(page.text), "name": "", "scope": ["read"]})
    assert r.status_code == 400 and "Name:" in r.text
    with runtime.sessions() as s:
        assert s.scalar(select(ApiToken)) is None

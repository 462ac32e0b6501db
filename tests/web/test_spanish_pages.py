"""Walks every patient page (subscribe, confirm, unsubscribe, preferences, and their error pages)
in Spanish and fails on any string left in English.

Two checks, because each misses what the other catches:
- no English msgid of the catalog (its words between the placeholders) is on a Spanish page: a
  string marked for translation whose Spanish is missing or not loaded;
- every text on a Spanish page that is also, word for word, on the same page in English is data
  (the clinic's name and address, the masked address, a series title, a zone, a language's own
  name): a string nobody marked for translation at all.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from babel.messages.pofile import read_po
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from drip.i18n import LANGUAGES, po_path
from drip.models import Subscriber, SubscriberTag, Tag
from subscribers.tokens import TokenSigner
from tests.factories import make_campaign, make_subscriber
from web.public import mask_email

ATTRIBUTES = ("title", "alt", "aria-label", "placeholder")
SKIP = {"script", "style"}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def texts(html: str) -> list[str]:
    """The text a patient sees or hears: text nodes (with <title>) and labelling attributes."""
    tree = HTMLParser(html)
    out = []
    for node in tree.root.traverse(include_text=True):
        if node.tag == "-text":
            parent = node.parent
            if parent is not None and parent.tag in SKIP:
                continue
            text = " ".join((node.text_content or "").split())
            if text:
                out.append(text)
        else:
            for name in ATTRIBUTES:
                value = (node.attributes or {}).get(name)
                if value and value.strip():
                    out.append(" ".join(value.split()))
    return out


def english_fragments() -> set[str]:
    """Each msgid's words between its placeholders and tags (the parts a page prints verbatim)."""
    with po_path("es").open("rb") as fh:
        catalog = read_po(fh, locale="es")
    fragments = set()
    for m in catalog:
        if not m.id:
            continue
        for part in re.split(r"%\(\w+\)s|\{\w+\}|<[^>]+>", m.id):
            part = " ".join(part.split()).strip(" .,:;?!")
            if len(re.findall(r"[A-Za-z]", part)) >= 4:  # a word, not "." or " at "
                fragments.add(part)
    return fragments


def walk(client, runtime, lang: str, series: int) -> list[tuple[str, int, str]]:
    """Every patient page in every state, in `lang` (by the browser's Accept-Language: the patients
    have no language of their own, so the English and Spanish walks show the same states)."""
    client.headers["Accept-Language"] = {"es": "es-MX,es;q=0.9", "en": "en-US,en;q=0.9"}[lang]
    signer = TokenSigner(runtime.settings.secret_key)
    p = f"{lang}-"
    with runtime.sessions.begin() as s:
        active = make_subscriber(s, f"{p}ann@example.org", name="Ann")
        paused = make_subscriber(s, f"{p}pat@example.org", status="paused")
        gone = make_subscriber(s, f"{p}uma@example.org", status="unsubscribed")
        pending = make_subscriber(s, f"{p}pia@example.org", status="pending")
        waiting = make_subscriber(s, f"{p}wes@example.org", status="pending")
        refused = make_subscriber(s, f"{p}rob@example.org", status="unsubscribed")
        bounced = make_subscriber(s, f"{p}bea@example.org", status="bounced")
        tag = s.query(Tag).filter_by(name="walk-newsletter").one_or_none()
        if tag is None:
            tag = Tag(name="walk-newsletter", description="Monthly clinic newsletter")
            s.add(tag)
            s.flush()
        s.add(SubscriberTag(subscriber_id=active.id, tag_id=tag.id))
        ids = {k: v.id for k, v in dict(active=active, paused=paused, gone=gone, pending=pending, waiting=waiting,
                                         refused=refused, bounced=bounced).items()}
    # Made once each: a token carries its time, and a page's form token is bound to its link.
    links = {(who, c): signer.unsubscribe_token(ids[who], series if c else None, 7) for who in ids for c in (True, False)}
    u = lambda who, campaign=True: links[(who, campaign)]  # noqa: E731
    pages: list[tuple[str, int, str]] = []

    def get(name, url, status=200):
        r = client.get(url)
        assert r.status_code == status, (name, r.status_code)
        pages.append((name, r.status_code, r.text))
        return r

    def post(name, url, data, status=200):
        r = client.post(url, data=data)
        assert r.status_code == status, (name, r.status_code, r.text[:300])
        pages.append((name, r.status_code, r.text))
        return r

    form = get("subscribe", "/subscribe")
    post("subscribe with errors", "/subscribe",
         {"csrf": csrf_of(form.text), "email": "not an address", "tz": "Mars/Base", "language": "xx"}, 400)
    post("subscribe, bad form token", "/subscribe", {"csrf": "nope", "email": "x@example.org"}, 403)
    get("check your inbox", "/subscribe/check-your-inbox")

    confirm = f"/confirm/{signer.confirm_token(ids['pending'])}"
    page = get("confirm (pending)", confirm)
    post("confirmed", confirm, {"csrf": csrf_of(page.text)})
    get("confirm (already subscribed)", confirm)
    refused_link = f"/confirm/{signer.confirm_token(ids['refused'])}"
    get("confirm (cannot be confirmed)", refused_link)
    post("confirm, bad form token", refused_link, {"csrf": "nope"}, 403)
    get("confirm (link altered)", confirm[:-3] + "abc", 400)
    get("confirm (no such sign-up)", f"/confirm/{signer.confirm_token(987654)}", 400)

    get("unsubscribe (series)", f"/u/{u('active')}")
    get("unsubscribe (newsletter)", f"/u/{u('active', campaign=False)}")
    get("unsubscribe (already)", f"/u/{u('gone')}")
    get("unsubscribe (unknown patient)", f"/u/{signer.unsubscribe_token(987654, None, 1)}")
    get("unsubscribe (link altered)", f"/u/{u('active')[:-3]}abc", 400)
    post("unsubscribe, no choice", f"/u/{u('active')}", {}, 400)
    post("unsubscribe, series on a newsletter link", f"/u/{u('active', campaign=False)}", {"scope": "campaign"}, 400)

    prefs = lambda who: f"/preferences/{u(who)}"  # noqa: E731
    page = get("preferences (active, lists)", prefs("active"))
    post("preferences saved", prefs("active"), {"csrf": csrf_of(page.text), "action": "lists",
                                                "list": str(tag.id)})
    post("preferences (pause)", prefs("active"), {"csrf": csrf_of(page.text), "action": "pause"})
    page = get("preferences (paused)", prefs("paused"))
    post("preferences (resume)", prefs("paused"), {"csrf": csrf_of(page.text), "action": "resume"})
    page = get("preferences (unsubscribed)", prefs("gone"))
    post("preferences (pause while unsubscribed)", prefs("gone"), {"csrf": csrf_of(page.text), "action": "pause"}, 409)
    post("preferences (resubscribe)", prefs("gone"), {"csrf": csrf_of(page.text), "action": "resubscribe"})
    get("preferences (pending)", prefs("waiting"))
    get("preferences (bounced)", prefs("bounced"))
    post("preferences, bad form token", prefs("active"), {"csrf": "nope", "action": "pause"}, 403)
    post("preferences, unknown choice", prefs("paused"), {"csrf": csrf_of(client.get(prefs("paused")).text),
                                                          "action": "explode"}, 400)
    get("preferences (unknown patient)", f"/preferences/{signer.unsubscribe_token(987654, None, 1)}")

    post("unsubscribed (series)", f"/u/{u('paused')}", {"scope": "campaign"})
    post("unsubscribed (all)", f"/u/{u('paused')}", {"scope": "all"})
    post("unsubscribed (one-click)", f"/u/{u('active')}", {"List-Unsubscribe": "One-Click"})
    return pages


@pytest.fixture
def series(runtime):
    """The series the unsubscribe links name (and the one a confirmed sign-up is enrolled in)."""
    with runtime.sessions.begin() as s:
        return make_campaign(s, "onboarding", n_items=1, every=timedelta(days=1)).id


def data_texts(runtime) -> set[str]:
    """What a page may print in any language: the clinic's and the patients' own data."""
    clinic = runtime.settings.clinic
    with runtime.sessions() as s:
        emails = [mask_email(e) for e in s.scalars(Subscriber.__table__.select().with_only_columns(Subscriber.email))]
        titles = [t for t in s.scalars(Subscriber.__table__.select().with_only_columns(Subscriber.name))]
    from drip.models import Campaign

    with runtime.sessions() as s:
        titles += list(s.scalars(Campaign.__table__.select().with_only_columns(Campaign.title)))
        titles += list(s.scalars(Tag.__table__.select().with_only_columns(Tag.description)))
    website = clinic.website.replace("https://", "").replace("http://", "")
    return {clinic.name, clinic.address, clinic.phone, website, *emails, *titles, *LANGUAGES.values(), "·", "✉", "✓"}


def problems_in(spanish, english, runtime) -> list[str]:
    fragments = english_fragments()
    allowed = data_texts(runtime)
    zone = re.compile(r"^[A-Z][A-Za-z_]+(/[A-Za-z0-9_ +-]+)+$|^UTC$")
    problems = []
    for (name, _, es_html), (_, _, en_html) in zip(spanish, english):
        if '<html lang="es">' not in es_html:
            problems.append(f"{name}: not marked as Spanish")
        es_texts = texts(es_html)
        visible = "\n".join(es_texts)
        problems += [f"{name}: English msgid text {f!r}" for f in sorted(fragments) if f in visible]
        en_texts = set(texts(en_html))
        for text in es_texts:
            if text in en_texts and text not in allowed and not zone.match(text) and re.search(r"[A-Za-z]{2}", text):
                problems.append(f"{name}: same text in English and Spanish (not marked for translation?): {text!r}")
    return problems


def test_no_english_is_left_on_the_spanish_patient_pages(runtime, client, series):
    spanish = walk(client, runtime, "es", series)
    english = walk(client, runtime, "en", series)
    assert [name for name, _, _ in spanish] == [name for name, _, _ in english]
    assert len(spanish) >= 30
    assert all('<html lang="en">' in html for _, _, html in english)
    assert problems_in(spanish, english, runtime) == []
    # The pages are in Spanish, not empty: a few sentences each walk must show.
    shown = "\n".join("\n".join(texts(html)) for _, _, html in spanish)
    for sentence in ("Darme de baja de esta serie", "Preferencias de correo", "Confirmar mi suscripción",
                     "Revise su bandeja de entrada", "Suscripción confirmada", "Este enlace no es válido"):
        assert sentence in shown


def test_the_walk_catches_a_missing_translation_and_an_unmarked_string(sqlite_runtime, sqlite_client):
    """The checks themselves work: an English msgid on a Spanish page, or a sentence nobody marked."""
    runtime, client = sqlite_runtime, sqlite_client
    with runtime.sessions.begin() as s:
        series = make_campaign(s, "onboarding", n_items=1, every=timedelta(days=1)).id
    spanish = walk(client, runtime, "es", series)
    english = walk(client, runtime, "en", series)
    name, status, html = spanish[0]
    untranslated = html.replace("Suscribirme</button>", "Subscribe</button>")
    assert f"{name}: English msgid text 'Subscribe'" in problems_in([(name, status, untranslated)], english[:1], runtime)
    # ... and with the English walk alone (a msgid the catalog lacks a translation for) too:
    assert problems_in([(name, status, untranslated)], [(name, status, "")], runtime) == [
        f"{name}: English msgid text 'Subscribe'"]
    unmarked = [(n, st, h.replace("</main>", "<p>Call us tomorrow</p></main>")) for n, st, h in (spanish[0], english[0])]
    assert problems_in(unmarked[:1], unmarked[1:], runtime) == [
        f"{name}: same text in English and Spanish (not marked for translation?): 'Call us tomorrow'"]

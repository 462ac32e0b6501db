"""`drip bench sendgrid`: recipients/s handed to SendGrid for one step, on loopback.

drip: `SendGridBackend.send_batch` (request bodies as plain dicts, 1,000 personalizations with
substitutions per request, sent by the `sendgrid` library's HTTP client).
Baseline, same run: the loop SendGrid's README teaches, one `Mail` object and one `sg.send()`
per recipient (each with its own rendered body, List-Unsubscribe header and delivery id).

Both talk to the same minimal server on 127.0.0.1 (in its own process) that reads the body and
answers 202, so the figures measure our side only (real SendGrid adds network latency to every
request, which widens the gap). The messages (unsubscribe URLs signed with `TokenSigner`,
per-recipient substitutions from the real renderer) are prepared before the clock starts, as the
dispatcher does; their cost is reported beside the rate (`prepare_per_s`, `end_to_end_per_s`),
as is building the request bodies alone (`payload_build_per_s`).
"""

from __future__ import annotations

import time

from bench import BenchResult
from bench.loopback_sink import LoopbackSink
from campaigns.render import EmailContent, Recipient, Renderer
from delivery.backends.sendgrid import SendGridBackend
from delivery.backends.sendgrid_payload import MAX_PERSONALIZATIONS, build_payload
from delivery.types import OutgoingMessage
from drip.config import Clinic, Settings
from subscribers.tokens import TokenSigner

BASE_URL = "https://riverside-clinic.example"
API_KEY = "SG.bench-key-not-real"
_NAMES = ["Maria Lopez", "José Álvarez", "Dr. Aiko Tanaka", "", "Chris O'Neil", "Priya Raman", "Li Wei",
          "Anna-Lena Müller", "Smith, John", "Noor Haddad", "Tomás Ó Briain", "Grace Kim"]
_BODY = (
    "Tight muscles pull on joints and nerves, and a spasm can keep that cycle going for days. "
    "Acupuncture relaxes muscle tissue and relieves tension, which can break the cycle.\n\n"
    "- Fine needles at trigger points release knots in the muscle.\n"
    "- Relaxed muscles let blood flow return, which speeds recovery.\n"
    "- Many patients notice easier movement after a few sessions.\n\n"
    "Talk with your practitioner about how many sessions make sense for you."
)


def compile_step(clinic: Clinic):
    """One step compiled by the real renderer (once per step version, as in production)."""
    return Renderer(clinic, base_url=BASE_URL).compile(
        EmailContent(
            key="step:5:v1", title="Muscle Relaxation", subject="How acupuncture relaxes tight muscles",
            preheader="Why a spasm lets go, and what to expect.", body=_BODY, section="How Acupuncture Works",
            position=5, total=12, campaign_title="Acupuncture for Pain Relief and Muscle Spasm",
        )
    )


def prepare(n: int, clinic: Clinic, compiled=None) -> list[OutgoingMessage]:
    """n messages for one step, as the dispatcher builds them for a shared-content backend:
    a signed unsubscribe token and the renderer's substitutions per recipient."""
    compiled = compiled or compile_step(clinic)
    shared = compiled.shared_content()
    signer = TokenSigner("bench-secret-key-" + "x" * 32)
    messages = []
    for i in range(n):
        token = signer.unsubscribe_token(10_000 + i, 3, 500_000 + i)
        person = Recipient(
            name=_NAMES[i % len(_NAMES)], email=f"patient{i}@example.com",
            unsubscribe_url=f"{BASE_URL}/u/{token}", preferences_url=f"{BASE_URL}/preferences/{token}",
        )
        messages.append(
            OutgoingMessage(
                delivery_id=500_000 + i, to_email=person.email, to_name=person.name, subject=shared.subject,
                html="", text="", from_email=clinic.from_email, from_name=clinic.from_name,
                reply_to=clinic.reply_to, unsubscribe_url=person.unsubscribe_url,
                categories=("acupuncture-pain", "acupuncture-pain:muscle-relaxation"),
                shared=shared, substitutions=compiled.substitutions(person),
            )
        )
    return messages


def _personal(text: str, substitutions: dict[str, str]) -> str:
    for key, value in substitutions.items():
        text = text.replace(key, value)
    return text


def readme_loop(messages: list[OutgoingMessage], host: str) -> None:
    """The per-recipient loop from SendGrid's README: one Mail, one request per recipient."""
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import CustomArg, Header, Mail

    sg = SendGridAPIClient(api_key=API_KEY, host=host)
    sg.client.timeout = 20.0
    for m in messages:
        shared, subs = m.shared, dict(m.substitutions)
        mail = Mail(
            from_email=(m.from_email, m.from_name), to_emails=(m.to_email, m.to_name) if m.to_name else m.to_email,
            subject=shared.subject, plain_text_content=_personal(shared.text, subs),
            html_content=_personal(shared.html, subs),
        )
        mail.reply_to = m.reply_to
        mail.header = Header("List-Unsubscribe", f"<{m.unsubscribe_url}>")
        mail.header = Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        mail.custom_arg = CustomArg("delivery_id", str(m.delivery_id))
        response = sg.send(mail)
        if response.status_code != 202:
            raise RuntimeError(f"baseline request answered {response.status_code}")


def run(quick: bool = False) -> BenchResult:
    """Best of `rounds` for both sides, interleaved, so machine noise hits both alike."""
    n, n_base, rounds = (2_000, 100, 1) if quick else (20_000, 300, 3)
    clinic = Clinic()
    compiled = compile_step(clinic)

    start = time.perf_counter()
    messages = prepare(n, clinic, compiled)
    prepare_s = time.perf_counter() - start

    start = time.perf_counter()
    for i in range(0, n, MAX_PERSONALIZATIONS):
        build_payload(messages[i:i + MAX_PERSONALIZATIONS])
    payload_s = time.perf_counter() - start

    best = best_base = float("inf")
    with LoopbackSink() as sink:
        settings = Settings(clinic=clinic, sendgrid_api_key=API_KEY, sendgrid_host=sink.url)
        for _ in range(rounds):
            backend = SendGridBackend(settings)
            before = sink.stats()
            start = time.perf_counter()
            results = backend.send_batch(messages)
            best = min(best, time.perf_counter() - start)
            after = sink.stats()
            if not all(r.ok for r in results) or after["personalizations"] - before["personalizations"] != n:
                raise RuntimeError("bench send failed: " + next((r.error for r in results if not r.ok), "count"))
            requests = after["requests"] - before["requests"]

            start = time.perf_counter()
            readme_loop(messages[:n_base], sink.url)
            best_base = min(best_base, time.perf_counter() - start)
            if sink.stats()["requests"] - after["requests"] != n_base:
                raise RuntimeError("baseline: the sink did not see one request per recipient")

    return BenchResult(
        bench="sendgrid",
        unit="recipients/s",
        rate=n / best,
        baseline=n_base / best_base,
        label=f"send_batch, {n:,} recipients in {requests} requests",
        baseline_label=f"README loop (Mail + sg.send per recipient), {n_base:,} recipients",
        details={
            "recipients": n,
            "requests": requests,
            "baseline_recipients": n_base,
            "payload_build_per_s": round(n / payload_s),
            "prepare_per_s": round(n / prepare_s),
            "end_to_end_per_s": round(n / (prepare_s + best)),
        },
    )

"""`drip bench sendgrid`: recipients/s through the SendGrid backend for one step, on loopback.

The clock covers everything the dispatcher and the backend do per recipient once the step is
compiled and the rows are loaded (claiming rows and finding their content is the `dispatch`
bench's business). The 20,000 rows go claim by claim (1,000, the default for SendGrid), as
`Dispatcher.run_batch` takes them, and for each claim:

- prepare (as `Dispatcher._build` does for a shared-content backend): sign the unsubscribe
  token, build the recipient's links, the renderer's substitutions, the `OutgoingMessage`;
- `SendGridBackend.send_batch`: group, build the request body (1,000 personalizations),
  serialize it, and send it with the `sendgrid` library's HTTP client, reading the answer.

`drip bench` has tuned the collector as `drip run` does (`drip.runtime.tune_worker_gc`).

Baseline, same run: the loop SendGrid's README teaches, one `Mail` and one `sg.send()` per
recipient, given the same work per recipient: its unsubscribe token and links, its own body
(rendered by the compiled step, the fast path), List-Unsubscribe headers and delivery id.

Both talk to the same server on 127.0.0.1, in a process of its own, that reads each body in
full and answers 202 with an `X-Message-Id` (real SendGrid adds network latency to every request,
which widens the gap). Each side's figure is the best of a few interleaved rounds (the machine is
shared and noisy). `details` splits the drip side: prepare alone, send_batch alone, building the
bodies alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench import BenchResult
from bench.loopback_sink import LoopbackSink
from campaigns.render import CompiledEmail, EmailContent, Renderer
from delivery.backends.sendgrid import SendGridBackend, encode_body
from delivery.backends.sendgrid_payload import MAX_PERSONALIZATIONS, build_payload
from delivery.dispatcher import claim_size
from delivery.types import OutgoingMessage, provider_categories
from drip.config import Clinic, Settings
from subscribers.tokens import TokenSigner

BASE_URL = "https://riverside-clinic.example"
API_KEY = "SG.bench-key-not-real"
SECRET = "bench-secret-key-" + "x" * 32
CAMPAIGN_ID = 3
CATEGORIES = provider_categories(campaign_id=CAMPAIGN_ID, step_id=8)  # as the dispatcher makes them
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


@dataclass(frozen=True)
class Row:
    """What the dispatcher has for a due row when it builds the message."""

    delivery_id: int
    subscriber_id: int
    name: str
    email: str


def rows(n: int) -> list[Row]:
    return [Row(500_000 + i, 10_000 + i, _NAMES[i % len(_NAMES)], f"patient{i}@example.com") for i in range(n)]


def step_content() -> EmailContent:
    return EmailContent(
        key="step:5:v1", title="Muscle Relaxation", subject="How acupuncture relaxes tight muscles",
        preheader="Why a spasm lets go, and what to expect.", body=_BODY, section="How Acupuncture Works",
        position=5, total=12, campaign_title="Acupuncture for Pain Relief and Muscle Spasm",
    )


def compile_step(clinic: Clinic) -> CompiledEmail:
    """One step compiled by the real renderer (once per step version, as in production)."""
    return Renderer(clinic, base_url=BASE_URL).compile(step_content())


def prepare(batch: list[Row], clinic: Clinic, renderer: Renderer, compiled: CompiledEmail,
            signer: TokenSigner) -> list[OutgoingMessage]:
    """The messages for one step, as `Dispatcher._build` makes them for a shared-content backend."""
    shared = compiled.shared_content()
    messages = []
    for row in batch:
        token = signer.unsubscribe_token(row.subscriber_id, CAMPAIGN_ID, row.delivery_id)
        unsubscribe_url, substitutions = compiled.personalize(row.name, token)
        messages.append(OutgoingMessage(  # positional, as the dispatcher makes them
            row.delivery_id, row.email, row.name, shared.subject, "", "", clinic.from_email, clinic.from_name,
            clinic.reply_to, unsubscribe_url, compiled.preheader, CATEGORIES, shared, substitutions,
        ))
    return messages


def readme_loop(batch: list[Row], clinic: Clinic, renderer: Renderer, compiled: CompiledEmail,
                signer: TokenSigner, host: str) -> None:
    """The per-recipient loop from SendGrid's README: one Mail, one request per recipient, with
    the same per-recipient work (token, links, the recipient's own rendered body)."""
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import CustomArg, Header, Mail

    sg = SendGridAPIClient(api_key=API_KEY, host=host)
    sg.client.timeout = 20.0
    for row in batch:
        token = signer.unsubscribe_token(row.subscriber_id, CAMPAIGN_ID, row.delivery_id)
        recipient = renderer.recipient(row.name, row.email, token)
        rendered = compiled.render(recipient)
        mail = Mail(
            from_email=(clinic.from_email, clinic.from_name),
            to_emails=(row.email, row.name) if row.name else row.email,
            subject=rendered.subject, plain_text_content=rendered.text, html_content=rendered.html,
        )
        mail.reply_to = clinic.reply_to
        mail.header = Header("List-Unsubscribe", f"<{recipient.unsubscribe_url}>")
        mail.header = Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        mail.custom_arg = CustomArg("delivery_id", str(row.delivery_id))
        response = sg.send(mail)
        if response.status_code != 202:
            raise RuntimeError(f"baseline request answered {response.status_code}")


def run(quick: bool = False) -> BenchResult:
    """Best of `rounds` for both sides, interleaved, so machine noise hits both alike."""
    n, n_base, rounds = (2_000, 100, 1) if quick else (20_000, 300, 5)
    clinic = Clinic()
    renderer = Renderer(clinic, base_url=BASE_URL)
    compiled = renderer.compile(step_content())
    signer = TokenSigner(SECRET)
    batch = rows(n)
    claim = claim_size(Settings(), SendGridBackend)  # rows per claim, as the worker takes them

    best = best_base = best_prepare = best_send = float("inf")
    requests = 0
    with LoopbackSink() as sink:
        settings = Settings(clinic=clinic, sendgrid_api_key=API_KEY, sendgrid_host=sink.url)
        for _ in range(rounds):
            backend = SendGridBackend(settings)
            before = sink.stats()
            sent = 0
            preparing = sending = 0.0
            start = time.perf_counter()
            for i in range(0, n, claim):  # as Dispatcher.run_batch: build a claim's messages, send them
                t0 = time.perf_counter()
                messages = prepare(batch[i:i + claim], clinic, renderer, compiled, signer)
                t1 = time.perf_counter()
                results = backend.send_batch(messages)
                t2 = time.perf_counter()
                preparing, sending = preparing + t1 - t0, sending + t2 - t1
                sent += sum(r.ok for r in results)
            end = time.perf_counter()
            best, best_prepare, best_send = min(best, end - start), min(best_prepare, preparing), \
                min(best_send, sending)
            after = sink.stats()
            if sent != n or after["personalizations"] - before["personalizations"] != n:
                raise RuntimeError("bench send failed: " + next((r.error for r in results if not r.ok), "count"))
            requests = after["requests"] - before["requests"]
            request_bytes = (after["bytes"] - before["bytes"]) // max(1, requests)

            start = time.perf_counter()
            readme_loop(batch[:n_base], clinic, renderer, compiled, signer, sink.url)
            best_base = min(best_base, time.perf_counter() - start)
            if sink.stats()["requests"] - after["requests"] != n_base:
                raise RuntimeError("baseline: the sink did not see one request per recipient")

    # The parts of send_batch that need no server, claim by claim.
    claims = [prepare(batch[i:i + claim], clinic, renderer, compiled, signer) for i in range(0, n, claim)]
    start = time.perf_counter()
    bodies = [build_payload(messages[i:i + MAX_PERSONALIZATIONS]).body
              for messages in claims for i in range(0, len(messages), MAX_PERSONALIZATIONS)]
    payload_s = time.perf_counter() - start
    start = time.perf_counter()
    for body in bodies:
        encode_body(body)
    encode_s = time.perf_counter() - start

    return BenchResult(
        bench="sendgrid",
        unit="recipients/s",
        rate=n / best,
        baseline=n_base / best_base,
        label=f"end to end (tokens, links, substitutions, bodies, HTTP), {n:,} recipients in {requests} requests",
        baseline_label=f"README loop (token, render, Mail + sg.send per recipient), {n_base:,} recipients",
        details={
            "recipients": n,
            "requests": requests,
            "bytes_per_request": request_bytes,
            "baseline_recipients": n_base,
            "prepare_per_s": round(n / best_prepare),
            "send_batch_per_s": round(n / best_send),
            "payload_build_per_s": round(n / payload_s),
            "json_encode_per_s": round(n / encode_s),
        },
    )

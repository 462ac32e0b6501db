"""`drip bench smtp`: SMTPBackend messages/s to an aiosmtpd sink on loopback.

Rate: one reused connection (what the backend does). Baseline, same run and same code path:
a new connection per message (what a naive sender does). Both are measured interleaved, round
by round, so load changes on a shared machine hit both alike. The headline pair uses STARTTLS +
AUTH, as every real relay (SES, Gmail, Postmark, a clinic's own server) requires; the plain-text
pair is in the details. On loopback a new plain connection costs only ~3 extra round trips, so
the plain ratio is small (~1.5x); TLS handshakes and logins are what reuse really saves, and
over a WAN each extra round trip also costs a network RTT.
Messages are the seed's real emails (UTF-8 HTML with inlined CSS, ~19 KB, and text), handed over as
the dispatcher does: the shared body plus each recipient's substitutions. Details add the MIME
build cost per message: spliced from the once-encoded shared body, the rendered body encoded whole,
`EmailMessage` with `policy.default`, and `email.mime` + compat32, on the same email.

End to end (`e2e_*`, bench/smtp_e2e.py): the dispatcher with a SQLite ledger sending to Postfix's
smtp-sink, the pipelined pool of connections against one connection in lock-step, same run.

The sink runs in a process of its own, like a real remote server, so its work does not take the
measured process's interpreter lock.
"""

from __future__ import annotations

import logging
import multiprocessing
import ssl
import time
import timeit
from email import policy
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.header import Header
from email.utils import formataddr, formatdate
from typing import Any

from bench import BenchResult
from delivery.backends.smtp import SMTPBackend
from delivery.mime import build_mime
from delivery.types import OutgoingMessage
from drip.config import Settings


def _certificate() -> tuple[bytes, bytes]:
    """A throwaway self-signed certificate for 127.0.0.1 (EC key: milliseconds to make)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drip bench SMTP")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _sink(conn: Any) -> None:
    """Accept everything (plain, or STARTTLS + AUTH), count messages and connections."""
    import ssl
    import tempfile

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd logs a deprecation per login
    counts = {"messages": 0, "connections": 0}
    cert_pem, key_pem = _certificate()
    with tempfile.TemporaryDirectory() as folder:
        with open(f"{folder}/cert.pem", "wb") as fh:
            fh.write(cert_pem)
        with open(f"{folder}/key.pem", "wb") as fh:
            fh.write(key_pem)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(f"{folder}/cert.pem", f"{folder}/key.pem")

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            counts["messages"] += 1
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == CREDENTIALS
        return AuthResult(success=ok, handled=False)

    class Sink(Controller):
        def _trigger_server(self) -> None:
            self.port = self.server.sockets[0].getsockname()[1]  # port 0: the OS picks a free one
            super()._trigger_server()

        def factory(self) -> SMTP:
            counts["connections"] += 1
            return super().factory()

    sink = Sink(Handler(), hostname="127.0.0.1", port=0, tls_context=tls, authenticator=authenticator)
    sink.start()
    counts["connections"] = 0  # forget the controller's readiness probe
    conn.send((sink.port, cert_pem))
    while True:
        command = conn.recv()
        if command == "stats":
            conn.send(dict(counts, cpu_s=time.process_time()))
        else:
            break
    sink.stop()


CREDENTIALS = (b"bench", b"bench-password")


def _messages(n: int) -> tuple[list[OutgoingMessage], list[OutgoingMessage]]:
    """The seed's real emails (UTF-8 HTML + text from the renderer), as the dispatcher hands them to
    the SMTP backend (shared body + this recipient's substitutions), and the same rendered whole."""
    from dataclasses import replace

    from bench.render import _NAMES, load_draft
    from campaigns.render import Renderer, content_from_draft
    from drip.config import Clinic

    draft, _ = load_draft()
    renderer = Renderer(Clinic(), "https://riverside-clinic.example")
    compiled = [renderer.compile(content_from_draft(draft, i)) for i in range(len(draft.steps))]
    shared, rendered = [], []
    for i in range(n):
        c = compiled[i % len(compiled)]
        name, token = _NAMES[i % len(_NAMES)], f"tok{i:07d}abcdef"
        r = c.render(renderer.recipient(name, f"patient{i}@example.org", token))
        unsubscribe, subs = c.personalize(name, token)
        whole = OutgoingMessage(
            i, f"patient{i}@example.org", name, r.subject, r.html, r.text, "care@riverside-clinic.example",
            "Riverside Acupuncture", "frontdesk@riverside-clinic.example", unsubscribe,
        )
        rendered.append(whole)
        shared.append(replace(whole, html="", text="", shared=c.shared_content(), substitutions=subs))
    return shared, rendered


def _email_message(m: OutgoingMessage) -> bytes:
    e = EmailMessage(policy=policy.default)
    e["From"] = formataddr((m.from_name, m.from_email))
    e["To"] = formataddr((m.to_name, m.to_email))
    e["Reply-To"] = m.reply_to
    e["Subject"] = m.subject
    e["Date"] = formatdate()
    e["Message-ID"] = f"<drip.{m.delivery_id}.0@riverside-clinic.example>"
    e["List-Unsubscribe"] = f"<{m.unsubscribe_url}>"
    e["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    e.set_content(m.text)
    e.add_alternative(m.html, subtype="html")
    return e.as_bytes(policy=policy.SMTP)


def _compat32(m: OutgoingMessage) -> bytes:
    e = MIMEMultipart("alternative")
    e["From"] = formataddr((m.from_name, m.from_email), "utf-8")
    e["To"] = formataddr((m.to_name, m.to_email), "utf-8")
    e["Reply-To"] = m.reply_to
    e["Subject"] = Header(m.subject, "utf-8")
    e["Date"] = formatdate()
    e["Message-ID"] = f"<drip.{m.delivery_id}.0@riverside-clinic.example>"
    e["List-Unsubscribe"] = f"<{m.unsubscribe_url}>"
    e["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    e.attach(MIMEText(m.text, "plain", "utf-8"))
    e.attach(MIMEText(m.html, "html", "utf-8"))
    return e.as_bytes()


def _us_per_call(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def _measure(settings: Settings, msgs: list[OutgoingMessage], rounds: int, fresh_per_round: int,
             ssl_context: ssl.SSLContext | None) -> tuple[float, float, float]:
    """(reused msg/s, connect-per-message msg/s, client CPU s per reused message), interleaved
    round by round so a change in the machine's load during the run hits both sides alike."""
    per_round = len(msgs) // rounds
    backend = SMTPBackend(settings, ssl_context=ssl_context)
    backend.send_batch(msgs[:10])  # warm up: connect, first-call costs
    reused_s = fresh_s = reused_cpu = 0.0
    fresh_n = 0
    for r in range(rounds):
        chunk = msgs[r * per_round:(r + 1) * per_round]
        start, cpu = time.perf_counter(), time.process_time()
        results = backend.send_batch(chunk)
        reused_s += time.perf_counter() - start
        reused_cpu += time.process_time() - cpu
        assert all(x.ok for x in results), next(x.error for x in results if not x.ok)
        start = time.perf_counter()
        for m in chunk[:fresh_per_round]:
            fresh = SMTPBackend(settings, ssl_context=ssl_context)
            (x,) = fresh.send_batch([m])
            fresh.close()
            assert x.ok, x.error
        fresh_s += time.perf_counter() - start
        fresh_n += fresh_per_round
    backend.close()
    return per_round * rounds / reused_s, fresh_n / fresh_s, reused_cpu / (per_round * rounds)


def run(quick: bool) -> BenchResult:
    n, rounds, fresh_per_round = (300, 3, 20) if quick else (3000, 10, 60)
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=_sink, args=(child,), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the aiosmtpd sink did not start (is aiosmtpd installed? `pip install -e .[dev]`)")
        port, cert_pem = parent.recv()
        msgs, whole = _messages(n)
        plain = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=10.0)
        secure = plain.with_(smtp_starttls=True, smtp_username=CREDENTIALS[0].decode(),
                             smtp_password=CREDENTIALS[1].decode())
        trust = ssl.create_default_context(cadata=cert_pem.decode())
        tls_reused, tls_fresh, tls_cpu = _measure(secure, msgs, rounds, fresh_per_round, trust)
        plain_reused, plain_fresh, _ = _measure(plain, msgs, rounds, fresh_per_round, None)
        parent.send("stats")
        stats = parent.recv()
    finally:
        parent.send("stop")
        proc.join(10)

    from bench import smtp_e2e

    e2e = smtp_e2e.run(quick)  # dispatcher + SQLite ledger + smtp-sink: pool vs one lock-step connection
    sample, sample_whole = msgs[1], whole[1]
    domain = "riverside-clinic.example"
    ours = _us_per_call(lambda: build_mime(sample, domain=domain), 200 if quick else 1000)
    ours_whole = _us_per_call(lambda: build_mime(sample_whole, domain=domain), 200 if quick else 1000)
    stdlib = _us_per_call(lambda: _email_message(sample_whole), 20 if quick else 100)
    compat = _us_per_call(lambda: _compat32(sample_whole), 50 if quick else 300)
    return BenchResult(
        bench="smtp",
        unit="msg/s",
        rate=tls_reused,
        baseline=tls_fresh,
        label="one reused STARTTLS+AUTH connection",
        baseline_label="STARTTLS+AUTH connection per message",
        details={
            "messages": n,
            "baseline_messages": rounds * fresh_per_round,
            "plain_reused_msg_s": round(plain_reused, 1),
            "plain_connect_per_message_msg_s": round(plain_fresh, 1),
            "plain_ratio": round(plain_reused / plain_fresh, 2),
            "sink_messages": stats["messages"],
            "sink_connections": stats["connections"],
            # where a reused message's time goes: our process vs the aiosmtpd sink (all sends)
            "client_cpu_us_per_msg": round(tls_cpu * 1e6, 1),
            "sink_cpu_us_per_msg": round(stats["cpu_s"] / stats["messages"] * 1e6, 1),
            "email_bytes": len(build_mime(sample, domain=domain)),
            "mime_build_us": round(ours, 1),  # spliced from the shared body, as the backend sends
            "mime_build_whole_body_us": round(ours_whole, 1),  # encoding the rendered body whole
            "mime_splice_speedup": round(ours_whole / ours, 1),
            "mime_email_message_policy_default_us": round(stdlib, 1),
            "mime_compat32_email_mime_us": round(compat, 1),
            "mime_speedup_vs_policy_default": round(stdlib / ours, 1),
            "target": ">= 1,000 msg/s reused and >= 3x connect-per-message",
            **e2e,
        },
    )

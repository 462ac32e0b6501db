"""A real SMTP server (aiosmtpd) on 127.0.0.1 for delivery tests.

`smtp_server` is plain SMTP; `smtp_tls_server` also offers STARTTLS with a throwaway self-signed
certificate (`.client_context()` trusts it); `smtp_auth_server` requires AUTH (PLAIN/LOGIN over
plain text, `auth_require_tls=False`) with `.username` / `.password`. Each yields an
`SMTPServer`: `.port`, `.messages` (parsed `email.message.Message`s, policy.default),
`.envelopes`, `.connections`, `.quits`, `.reject(addr, code, text)`, `.reject_all(code, text)` /
`.accept_all()` (every RCPT answered `code text`, e.g. 421 or 451), `.drop_connections()`,
`.drop_on_mail(times)`, `.close_after_data(times)`; `.pipelining = True` makes it offer ESMTP
PIPELINING (aiosmtpd reads pipelined commands either way; it does not announce them by itself).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Envelope:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    tls: bool
    login: str | None


class _Handler:
    """Records what arrives; can refuse addresses or drop connections on demand."""

    def __init__(self, server: "SMTPServer") -> None:
        self.server = server

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        srv = self.server
        with srv.lock:
            if srv._drop_on_mail > 0:
                srv._drop_on_mail -= 1
                smtp.transport.close()  # the client sees the connection vanish mid-transaction
                return "421 4.4.2 closing"
            rule = srv._rejections.get(address.lower())
        if rule:
            return f"{rule[0]} {rule[1]}"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        with self.server.lock:
            rule = self.server._rejections.get(address.lower()) or self.server._reject_all
        if rule and rule[0] == 421:  # "service not available, closing transmission channel"
            asyncio.get_running_loop().call_soon(smtp.transport.close)  # after the reply is written
        if rule:
            return f"{rule[0]} {rule[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope):
        raw = envelope.original_content
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        env = Envelope(envelope.mail_from, list(envelope.rcpt_tos), raw, session.ssl is not None, login)
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        with self.server.lock:
            self.server.envelopes.append(env)
            self.server.messages.append(parsed)
            if self.server._close_after_data > 0:
                self.server._close_after_data -= 1
                # after the 250 below is written: close() flushes what is buffered first
                asyncio.get_running_loop().call_soon(smtp.transport.close)
        return "250 2.0.0 accepted"

    async def handle_EHLO(self, smtp, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.server.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_QUIT(self, smtp, session, envelope):
        with self.server.lock:
            self.server.quits += 1
        return "221 Bye"


class _Controller(Controller):
    """Counts TCP connections (one SMTP instance each) and keeps them to drop on demand."""

    def __init__(self, server: "SMTPServer", port: int = 0, **kwargs) -> None:
        self._srv = server
        super().__init__(_Handler(server), hostname="127.0.0.1", port=port, **kwargs)

    def _trigger_server(self) -> None:
        # Port 0 = a free port chosen by the OS, race-free; read it back before the
        # readiness probe connects to it.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()

    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # "AUTH without TLS": the point of the auth fixture
            warnings.simplefilter("ignore", UserWarning)
            smtp = super().factory()
        with self._srv.lock:
            self._srv._live.append(smtp)
            self._srv._factory_calls += 1
        return smtp


@dataclass
class SMTPServer:
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    quits: int = 0
    username: str = ""
    password: str = ""
    ca_pem: bytes = b""
    pipelining: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    _rejections: dict[str, tuple[int, str]] = field(default_factory=dict)
    _reject_all: tuple[int, str] | None = None
    _drop_on_mail: int = 0
    _close_after_data: int = 0
    _live: list[SMTP] = field(default_factory=list)
    _factory_calls: int = 0
    _baseline: int = 0
    _controller: _Controller | None = None

    @property
    def connections(self) -> int:
        """TCP connections clients opened since the server was ready."""
        return self._factory_calls - self._baseline

    def reject(self, addr: str, code: int, text: str) -> None:
        """Answer MAIL FROM / RCPT TO for `addr` with `code text` (e.g. 550, 451)."""
        with self.lock:
            self._rejections[addr.lower()] = (code, text)

    def reject_all(self, code: int, text: str) -> None:
        """Answer every RCPT TO with `code text` (a 421 also closes the connection) until `accept_all`."""
        with self.lock:
            self._reject_all = (code, text)

    def accept_all(self) -> None:
        with self.lock:
            self._reject_all = None

    def drop_on_mail(self, times: int = 1) -> None:
        """Close the connection from the server side at the next `times` MAIL FROMs."""
        with self.lock:
            self._drop_on_mail = times

    def close_after_data(self, times: int = 1) -> None:
        """Accept the next `times` messages, then close that connection server-side."""
        with self.lock:
            self._close_after_data = times

    def drop_connections(self) -> None:
        """Close every open connection server-side, like an idle timeout would."""
        assert self._controller is not None
        done = threading.Event()

        def close_all() -> None:
            for smtp in self._live:
                if smtp.transport is not None:
                    smtp.transport.close()
            done.set()

        self._controller.loop.call_soon_threadsafe(close_all)
        assert done.wait(5)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cadata=self.ca_pem.decode())


def _self_signed() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())  # milliseconds, unlike RSA
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drip test SMTP")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, key_pem


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory) -> tuple[bytes, str, str]:
    cert_pem, key_pem = _self_signed()
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(key_pem)
    return cert_pem, str(folder / "cert.pem"), str(folder / "key.pem")


def run_smtp_server(*, tls: tuple[bytes, str, str] | None = None, auth: tuple[str, str] | None = None,
                    port: int = 0) -> Iterator[SMTPServer]:
    """Start a server, yield it, stop it. Usable from other test packages and benchmarks. `port`:
    0 for a free one, or a given port (a server that comes up where a client was refused)."""
    server = SMTPServer()
    kwargs: dict = {}
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[1], tls[2])
        kwargs["tls_context"] = ctx
        server.ca_pem = tls[0]
    if auth:
        server.username, server.password = auth

        def authenticator(smtp, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == server.username
                  and auth_data.password.decode() == server.password)
            # handled=False: let aiosmtpd answer 535 itself (True would leave the client waiting)
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        kwargs.update(authenticator=authenticator, auth_require_tls=False, auth_required=True)
    controller = _Controller(server, port=port, **kwargs)
    server._controller = controller
    controller.start()
    server.port = controller.port
    with server.lock:
        server._baseline = server._factory_calls  # the controller's own readiness probe
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    yield from run_smtp_server()


@pytest.fixture
def smtp_tls_server(tls_material) -> Iterator[SMTPServer]:
    yield from run_smtp_server(tls=tls_material)


@pytest.fixture
def smtp_auth_server() -> Iterator[SMTPServer]:
    yield from run_smtp_server(auth=("clinic", "s3cret-pass"))


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

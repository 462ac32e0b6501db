"""Read one message from the bounce mailbox: which addresses failed, how, and which of our
messages it returns. No database, no network: a pure function of the bytes.

- RFC 3464 delivery status notifications (Postfix, Exim 4 with DSN, Exchange / Office 365, Gmail,
  Sendmail...): the `message/delivery-status` part is read field by field. Hard vs soft comes
  from the RFC 3463 Status code, not the Action alone: 5.1.x (bad mailbox), 5.2.x (mailbox
  disabled) and 5.4.x (no such domain / unroutable) are hard; 4.x.x is soft whatever the Action
  (Postfix reports an expired queue as "failed" with 4.4.1); a 5.7.x (policy, spam block), 5.3.x
  (the remote system), 5.5.x (protocol) or 5.6.x (content) blames the message or our reputation,
  not the address, so it counts as soft, as the SMTP backend treats it at RCPT.
- Non-standard reports (qmail, old Exim text, many others): flufl.bounce's detectors find the
  failed addresses (permanent vs temporary); a status code printed next to the address refines it.
- ARF complaints (RFC 5965, `message/feedback-report`): Feedback-Type abuse/fraud/virus/other is
  a complaint; `not-spam` is not.
Which of our messages: the returned message (message/rfc822 or text/rfc822-headers, or the text
after qmail's / Exim's "copy of the message" line) gives its Message-ID and X-Drip-Delivery-Id;
the report's own To / Delivered-To / X-Original-To / Envelope-To and ARF's Original-Mail-From
carry the VERP address (checked later, with the key, in delivery/bounces/match.py).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass, field
from email.message import Message

HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BASIC = re.compile(r"\b([45])\d\d\b")
_ADDR = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_MSGID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_HARD_SUBJECTS = {"1", "2", "4"}
_COMPLAINT_TYPES = {"abuse", "fraud", "virus", "other"}
_ENVELOPE_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")
# The line after which qmail / Exim paste the returned message as text.
_COPY_MARKERS = re.compile(
    r"^(?:--- Below this line is a copy of the message\.|-+ This is a copy of the message.*-+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Failure:
    recipient: str  # lower-cased; "" when a complaint report redacts it
    kind: str  # hard | soft | complaint
    status: str = ""  # RFC 3463 code, e.g. "5.1.1"
    diagnostic: str = ""


@dataclass
class Report:
    report_id: str  # stable per report: dedupe key (its Message-ID, else a hash of the bytes)
    failures: list[Failure] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)  # of the returned message (ours if any)
    delivery_ids: list[int] = field(default_factory=list)  # X-Drip-Delivery-Id of the returned message
    envelope: list[str] = field(default_factory=list)  # header values that may hold a VERP address
    subject: str = ""


def kind_of_status(status: str, action: str = "failed") -> str | None:
    """hard / soft from an RFC 3463 code and the DSN Action; None for a success notice."""
    action = action.strip().lower()
    if action in {"delivered", "relayed", "expanded"}:
        return None
    m = _STATUS.search(status or "")
    if m is None:
        return SOFT if action == "delayed" else HARD
    if m.group(1) == "2":
        return None
    if m.group(1) == "4" or action == "delayed":
        return SOFT
    return HARD if m.group(2) in _HARD_SUBJECTS else SOFT


def _address(value: str) -> str:
    # "rfc822; alice@example.org" / "<alice@example.org>"
    value = value.split(";", 1)[1] if ";" in value else value
    m = _ADDR.search(value)
    return m.group(0).lower() if m else ""


def _header_blocks(part: Message) -> list[Message]:
    """The field groups of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    raw = part.get_payload(decode=True) or b""
    return [email.message_from_bytes(block.strip() + b"\n") for block in re.split(rb"\r?\n\r?\n", raw.strip())
            if block.strip()]


def _dsn_failures(part: Message) -> list[Failure]:
    out = []
    for block in _header_blocks(part)[1:]:  # the first group is per-message
        recipient = _address(str(block.get("Final-Recipient", "") or block.get("Original-Recipient", "")))
        if not recipient:
            continue
        status = str(block.get("Status", "")).strip()
        diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
        kind = kind_of_status(status, str(block.get("Action", "failed")))
        if kind is not None:
            m = _STATUS.search(status)
            out.append(Failure(recipient, kind, m.group(0) if m else "", diagnostic[:500]))
    return out


def _collect_returned(report: Report, headers: Message) -> None:
    mid = _MSGID.search(str(headers.get("Message-ID", "")))
    if mid and mid.group(0) not in report.message_ids:
        report.message_ids.append(mid.group(0))
    did = str(headers.get("X-Drip-Delivery-Id", "")).strip()
    if did.isdigit() and 0 < int(did) < 2**63 and int(did) not in report.delivery_ids:
        report.delivery_ids.append(int(did))
    rp = str(headers.get("Return-Path", ""))
    if rp:
        report.envelope.append(rp)


def _text_of(msg: Message) -> str:
    chunks = []
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            data = part.get_payload(decode=True) or b""
            chunks.append(data.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(chunks)


def _text_failures(msg: Message, text: str) -> list[Failure]:
    """Non-DSN reports: flufl.bounce's detectors, refined by a code printed near the address."""
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(msg)
    out = []
    found = [(a, HARD) for a in sorted(permanent)] + [(a, SOFT) for a in sorted(temporary - permanent)]
    for raw_addr, default in found:
        text_addr = raw_addr.decode("utf-8", "replace") if isinstance(raw_addr, bytes) else str(raw_addr)
        addr = text_addr.strip("<> ").lower()
        if not _ADDR.fullmatch(addr):
            continue
        status, kind = "", default
        at = text.lower().find(addr)
        window = text[at: at + 600] if at >= 0 else ""
        marker = _COPY_MARKERS.search(window)
        window = window[: marker.start()] if marker else window  # not the returned message's text
        m = _STATUS.search(window)
        if m:
            status = m.group(0)
            kind = kind_of_status(status, "failed" if default == HARD else "delayed") or default
        elif _BASIC.search(window):
            kind = SOFT if _BASIC.search(window).group(1) == "4" else default
        out.append(Failure(addr, kind, status, " ".join(window.split())[:500]))
    return out


def parse_report(raw: bytes) -> Report:
    """Everything this message says about failures of our mail (an empty `failures`: not a bounce)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    msgid = _MSGID.search(str(msg.get("Message-ID", "")))
    report = Report(report_id=msgid.group(0) if msgid else "sha256:" + hashlib.sha256(raw).hexdigest(),
                    subject=" ".join(str(msg.get("Subject", "")).split())[:200])
    for name in _ENVELOPE_HEADERS:
        report.envelope.extend(str(v) for v in msg.get_all(name, []))
    dsn_seen = False
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            dsn_seen = True
            report.failures.extend(_dsn_failures(part))
        elif ctype == "message/feedback-report":
            dsn_seen = True
            blocks = _header_blocks(part)
            fields = blocks[0] if blocks else Message()
            ftype = str(fields.get("Feedback-Type", "")).strip().lower()
            report.envelope.extend(str(v) for v in fields.get_all("Original-Mail-From", []))
            if ftype in _COMPLAINT_TYPES:
                recipients = [_address(str(v)) for v in fields.get_all("Original-Rcpt-To", []) + fields.get_all(
                    "Removed-Recipient", [])]
                recipients = [r for r in recipients if r] or [""]
                report.failures.extend(Failure(r, COMPLAINT, "", f"feedback-type {ftype}") for r in recipients)
        elif ctype == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                _collect_returned(report, inner)
        elif ctype == "text/rfc822-headers":
            data = part.get_payload(decode=True) or b""
            _collect_returned(report, email.message_from_bytes(data.lstrip()))
    text = _text_of(msg)
    if not dsn_seen:
        report.failures.extend(_text_failures(msg, text))
    marker = _COPY_MARKERS.search(text)
    if marker:  # the returned message pasted as text (qmail, old Exim)
        _collect_returned(report, email.message_from_string(text[marker.end():].lstrip("\r\n ")))
    for header in ("In-Reply-To", "References", "X-Original-Message-ID"):
        for mid in _MSGID.findall(str(msg.get(header, ""))):
            if mid not in report.message_ids:
                report.message_ids.append(mid)
    # Gmail puts the original Message-ID in the delivery-status part's per-message fields
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            blocks = _header_blocks(part)
            for mid in _MSGID.findall(str(blocks[0].get("X-Original-Message-ID", ""))) if blocks else []:
                if mid not in report.message_ids:
                    report.message_ids.append(mid)
    return report

"""A newsletter forwarded or pasted as text -> the article in it (and its Subject as a title hint).

Clinics forward last year's newsletter or paste a raw message source. The article must not
carry its envelope into patient emails: MIME and "Forwarded message" header blocks, part
boundaries, quoted-printable soft breaks and escapes (=E2=80=99), "-- " signatures and
"Sent from my phone" lines are removed. Only the first text/plain part of a multipart
message is kept (the HTML part repeats it).
"""

from __future__ import annotations

import quopri
import re

_HEADER = re.compile(r"^(?P<key>[A-Za-z][A-Za-z-]{1,40}):[ \t]*(?P<value>.*)$")
_EMAIL_KEYS = {
    "from", "to", "cc", "bcc", "date", "sent", "subject", "reply-to", "message-id", "mime-version",
    "content-type", "content-transfer-encoding", "content-disposition", "received", "return-path",
    "x-mailer", "delivered-to", "in-reply-to", "references", "thread-topic", "importance",
}
_FORWARD = re.compile(
    r"^\s*(?:-{2,}\s*(?:Forwarded message|Original Message|Forwarded by.*?)\s*-{2,}|Begin forwarded message:)\s*$",
    re.I,
)
_BOUNDARY = re.compile(r"""boundary\s*=\s*"?([^";\s]+)"?""", re.I)
_QP_HINT = re.compile(r"(?<!=)=[0-9A-F]{2}|(?<=[^\s=])=\n(?=\S)")  # "=E2=80=99", a soft break in a word
_SENT_FROM = re.compile(r"^\s*(?:Sent from my \w+|Get Outlook for \w+)", re.I)


def _header_block(lines: list[str], start: int) -> tuple[dict[str, str], int]:
    """Email headers from `start` (with folded continuation lines) up to a blank line: (headers, end)."""
    headers: dict[str, str] = {}
    k, last = start, ""
    while k < len(lines):
        line = lines[k]
        if not line.strip():
            break
        m = _HEADER.match(line.strip()) if not line[:1].isspace() else None
        if m and m.group("key").lower() in _EMAIL_KEYS:
            last = m.group("key").lower()
            headers[last] = m.group("value").strip()
        elif line[:1].isspace() and last:
            headers[last] += " " + line.strip()
        else:
            break
        k += 1
    return headers, k


def _decode_qp(text: str) -> str:
    try:
        return quopri.decodestring(text.encode("utf-8")).decode("utf-8")
    except UnicodeDecodeError:
        return text


def unwrap_email(text: str) -> tuple[str, str]:
    """(article text, subject or ""); text that is not an email comes back unchanged."""
    lines = text.split("\n")
    subject = ""
    qp = False
    first = next((k for k, line in enumerate(lines) if line.strip()), 0)
    headers, end = _header_block(lines, first)
    if len(headers) >= 2 and end < len(lines) and not lines[end].strip():
        subject = headers.get("subject", "")
        qp = "quoted-printable" in headers.get("content-transfer-encoding", "").lower()
        body = lines[end + 1:]
        bmatch = _BOUNDARY.search(headers.get("content-type", ""))
        if bmatch:
            body, qp = _first_text_part(body, bmatch.group(1), qp)
        lines = body
    if qp or len(_QP_HINT.findall("\n".join(lines))) >= 4:
        lines = _decode_qp("\n".join(lines)).split("\n")
    out: list[str] = []
    k = 0
    while k < len(lines):
        line = lines[k]
        if _FORWARD.match(line):
            fwd, end = _header_block(lines, k + 1)
            subject = subject or fwd.get("subject", "")
            k = end
            continue
        if line in ("-- ", "--") and sum(1 for x in lines[k + 1:] if x.strip()) <= 8:
            break  # the signature delimiter: the few lines after it are the sender's signature
        if _SENT_FROM.match(line):
            k += 1
            continue
        out.append(line)
        k += 1
    return "\n".join(out), " ".join(subject.split())


def _first_text_part(body: list[str], boundary: str, qp: bool) -> tuple[list[str], bool]:
    """The first text/plain part (its own headers say whether it is quoted-printable)."""
    marks = [k for k, line in enumerate(body) if line.strip().startswith("--" + boundary)]
    for a, b in zip(marks, marks[1:] + [len(body)]):
        headers, end = _header_block(body, a + 1)
        if "text/plain" in headers.get("content-type", "text/plain").lower():
            part_qp = "quoted-printable" in headers.get("content-transfer-encoding", "").lower()
            return body[end + 1:b], part_qp
    return body, qp

"""One pass over the bounce mailbox(es): parse, match, record, then mark each message processed.

Each message is recorded in its own transaction and marked processed only after the commit: a
crash in between leaves it unread, and reading it again stores nothing new (the event store
dedupes it). A message that is not a report (an auto-reply, a human answer) is marked
processed too, so it is not parsed again every few minutes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from sqlalchemy.orm import Session, sessionmaker

from delivery.bounces.apply import Finding, apply_report
from delivery.bounces.dsn import parse_report
from delivery.bounces.mailbox import BounceSource
from drip.config import Settings, secret_key

log = logging.getLogger("drip.bounces")


@dataclass
class PollResult:
    messages: int = 0  # read from the mailbox(es)
    not_reports: int = 0  # no failure found in them
    findings: list[Finding] = field(default_factory=list)

    def summary(self) -> str:
        kinds = {k: sum(1 for f in self.findings if f.kind == k) for k in ("hard", "soft", "complaint")}
        unmatched = sum(1 for f in self.findings if f.delivery_id is None)
        return (f"{self.messages} messages: {kinds['hard']} hard bounces, {kinds['soft']} soft, "
                f"{kinds['complaint']} complaints, {unmatched} unmatched, {self.not_reports} not bounce reports")


def poll(sessions: sessionmaker[Session], settings: Settings, sources: Iterable[BounceSource],
         now: Callable[[], datetime], stopping: Callable[[], bool] = lambda: False) -> PollResult:
    """Read every unprocessed message of `sources` once."""
    result = PollResult()
    secret = secret_key(settings)
    for source in sources:
        try:
            for key, raw in source.messages():
                if stopping():
                    return result
                result.messages += 1
                try:
                    report = parse_report(raw)
                except Exception as exc:  # noqa: BLE001 - one unreadable message must not block the mailbox
                    log.warning("bounce mailbox %s: message %s unreadable (%r); marked processed", source.name, key,
                                exc)
                    result.not_reports += 1
                    source.done(key)
                    continue
                if not report.failures:
                    result.not_reports += 1
                else:
                    with sessions.begin() as s:
                        applied = apply_report(s, report, settings, now(), secret)
                    result.findings.extend(applied.findings)
                    for finding in applied.findings:
                        log.info("bounce mailbox: %s", finding.line())
                source.done(key)
        finally:
            source.close()
    return result

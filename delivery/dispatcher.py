"""The dispatcher: claim due rows -> check -> render -> backend.send_batch() -> record.

It holds no state between ticks that the database does not also hold, so any number of workers
can run it and a killed worker loses nothing. Checks at send time (not only at enrollment),
because the world changes while a row waits: the subscriber may have unsubscribed or bounced, the
campaign may be paused, the worker may have been down past the send window, or a newsletter may
already have used today's frequency cap.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections import defaultdict
from functools import lru_cache
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import perf_counter
from typing import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from campaigns.render import EmailContent, Renderer
from drip.i18n import LANGUAGES
from campaigns.schedule import SendWindow, defer_for_cap, local_day_bounds, next_send_at, parse_window, resolve_zone
from campaigns.service import latest_versions
from delivery.breaker import CircuitBreaker
from delivery.ledger import CANCEL, LATER, DueRow, LedgerStore, RecordResult
from delivery.ratelimit import Grant, RateLimiter, parse_limits
from delivery.types import EmailBackend, OutgoingMessage, SendResult, provider_categories
from drip import metrics
from drip.config import Settings
from drip.db import retry_unavailable
from drip.errors import ConfigurationError
from drip.models import Campaign, Step, SubscriberStatus, utcnow
from drip.runtime import Runtime
from subscribers.tokens import TokenSigner

log = logging.getLogger("drip.dispatcher")

Clock = Callable[[], datetime]
# Newsletters are sent at the time staff chose; when the frequency cap defers one, it goes out the
# next local day in this window.
NEWSLETTER_DEFER_WINDOW = "daily 09:00-17:00"


@lru_cache(maxsize=256)
def _window(spec: str) -> SendWindow:
    return parse_window(spec)


@lru_cache(maxsize=256)
def _parse_condition(text: str):
    """A step's stored condition, or None if it no longer parses (then the step is skipped, never sent
    to everyone)."""
    from campaigns.conditions import parse_condition
    from drip.errors import InputError

    try:
        return parse_condition(text)
    except InputError:
        return None


# A step sent more than this after its planned time (worker down, cap, backoff) re-spaces the next ones.
LATE_SEND = timedelta(hours=1)


@dataclass
class TickReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    skipped: int = 0  # a step's condition did not hold at send time (recorded; not a failure)
    deferred: int = 0
    reclaimed: int = 0
    newsletters_fired: int = 0
    released: int = 0  # claimed rows given back untouched (backend down, or the batch stopped)
    backend_down: bool = False  # the backend failed at server level during this tick
    held_for: float = 0.0  # the circuit breaker holds the backend this many more seconds
    limited_until: datetime | None = None  # a rate limit is used up: the next sends go then
    limit: str = ""  # the limit that was used up ("30/minute")
    paused_campaigns: list[str] = field(default_factory=list)

    def add(self, other: "TickReport") -> None:
        for name in ("claimed", "sent", "failed", "retried", "cancelled", "skipped", "deferred", "reclaimed",
                     "released"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.backend_down = self.backend_down or other.backend_down
        self.held_for = max(self.held_for, other.held_for)
        if other.limited_until is not None:
            self.limited_until, self.limit = other.limited_until, other.limit
        self.paused_campaigns += other.paused_campaigns


def backoff(attempts: int, base: float = 60.0, cap: float = 3600.0, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter (AWS style): spreads retries of a failed batch."""
    rng = rng or random
    return rng.uniform(base / 2, min(cap, base * 2 ** max(0, attempts - 1)))


#: Rows per claim when DRIP_BATCH_SIZE is not set: one full SendGrid request for a backend that
#: sends a whole group at once; 500 for backends that send one email at a time (at a slow SMTP
#: relay, 0.5 s a message, a claim must still finish within its lease).
SHARED_CONTENT_CLAIM = 1000
ONE_BY_ONE_CLAIM = 500


def claim_size(settings: Settings, backend: object) -> int:
    """Rows one claim takes: `settings.batch_size` when set, else the backend's natural size."""
    if settings.batch_size > 0:
        return settings.batch_size
    return SHARED_CONTENT_CLAIM if getattr(backend, "sends_groups", False) else ONE_BY_ONE_CLAIM


class Dispatcher:
    def __init__(
        self,
        runtime: Runtime,
        backend: EmailBackend,
        *,
        renderer: Renderer | None = None,
        clock: Clock = utcnow,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.runtime = runtime
        runtime.refresh_settings()  # the clinic settings saved in the web app (drip/clinic_settings.py)
        self.settings = runtime.settings
        self.backend = backend
        self.clock = clock
        self.store = LedgerStore(runtime.sessions, worker_id or f"{socket.gethostname()}:{os.getpid()}")
        self.sessions = runtime.sessions
        self.renderer = renderer or Renderer(self.settings.clinic, base_url=self.settings.base_url)
        from drip.config import secret_key

        self.signer = TokenSigner(secret_key(self.settings))
        self.rng = rng or random.Random()
        self.lease = timedelta(seconds=self.settings.lease_seconds)
        self.batch_size = claim_size(self.settings, backend)
        self.backend_name = str(getattr(backend, "name", type(backend).__name__))
        metrics.prepare_backend(self.backend_name)
        self.breaker = breaker or CircuitBreaker(
            base=self.settings.breaker_base_seconds, cap=self.settings.breaker_max_seconds, rng=self.rng
        )
        # Shared rate limits (delivery/ratelimit.py); None when none is set: no query at all then.
        self.limiter: RateLimiter | None = None
        limits = parse_limits(self.settings.rate_limits)
        if limits:
            self.limiter = RateLimiter(self.sessions, self.backend_name, limits)
        self._limit_logged: datetime | None = None

    # -- public
    def refresh_clinic(self) -> bool:
        """Pick up branding / sender saved in the web app since the last tick (one cheap read);
        the renderer is rebuilt then, so the next email carries it."""
        if not self.runtime.refresh_settings():
            return False
        self.settings = self.runtime.settings
        self.renderer = Renderer(self.settings.clinic, base_url=self.settings.base_url,
                                 templates_dir=self.renderer.templates_dir)
        return True

    def tick(self, max_batches: int | None = None) -> TickReport:
        """Send everything due now, batch by batch. Returns what happened. While the circuit
        breaker holds the backend, nothing is claimed (rows stay due, untouched)."""
        self.refresh_clinic()
        now = self.clock()
        report = TickReport(reclaimed=self.store.reclaim_expired(now))
        from campaigns.broadcasts import run_due

        with self.sessions.begin() as s:
            report.newsletters_fired = run_due(s, now, self.settings.clinic.timezone)
        batches = 0
        while max_batches is None or batches < max_batches:
            if not self.breaker.allows():
                report.held_for = self.breaker.remaining()
                break
            if self.limiter is not None and self.limiter.blocked(self.clock()):
                report.limited_until = self.limiter.blocked_until  # known full: not even a query
                report.limit = str(self.limiter.blocked_by or "")
                break
            batch = self.run_batch()
            report.add(batch)
            batches += 1
            if batch.claimed < self.batch_size or batch.backend_down or batch.limited_until is not None:
                break
        return report

    def _reserve(self, now: datetime) -> tuple[Grant | None, TickReport | None]:
        """Reserve room under the rate limits before claiming: (grant, None), or (None, a report
        saying when the next sends go) when every window is full. Rows not claimed stay due."""
        if self.limiter is None:
            return None, None
        grant = retry_unavailable(lambda: self.limiter.reserve(now, self.batch_size),
                                  "reserving under the rate limit", cap=self.settings.db_retry_max_seconds)
        if grant.next_at is not None:
            metrics.RATE_LIMIT_WAITS.inc()
            if self._limit_logged != grant.next_at:  # one line per full window, not one per tick
                self._limit_logged = grant.next_at
                log.info("rate limit %s of backend %s reached%s: next sends at %s UTC",
                         grant.limit, self.backend_name, f" after {grant.granted} more" if grant.granted else "",
                         grant.next_at.strftime("%Y-%m-%d %H:%M:%S"))
        if grant.granted == 0:
            return None, TickReport(limited_until=grant.next_at, limit=str(grant.limit))
        return grant, None

    def run_batch(self) -> TickReport:
        if not self.breaker.allows():
            return TickReport(held_for=self.breaker.remaining())
        now = self.clock()
        grant, limited = self._reserve(now)
        if limited is not None:
            return limited
        ids = self.store.claim(now, grant.granted if grant else self.batch_size, self.lease)
        report = TickReport(claimed=len(ids))
        if grant is not None and grant.next_at is not None:
            report.limited_until, report.limit = grant.next_at, str(grant.limit)
        if not ids:
            self._give_back(grant, 0)
            return report
        handed = 0  # emails given to the provider: they count against the rate limit, accepted or not
        rows = self.store.load(ids)
        by_id = {r.id: r for r in rows}
        sendable, cancelled, deferred = self._check(rows, now)
        report.cancelled, report.deferred = len(cancelled), len(deferred)
        messages, versions, render_failed = self._build(sendable)
        if cancelled or deferred or render_failed:
            self._record(now, by_id, [], versions, report, cancelled=cancelled, deferred=deferred,
                         render_failed=render_failed)
        # Record after every chunk, not once per claim: a worker killed mid-batch can only resend
        # what the provider accepted since the last record (at most one chunk), not the whole claim.
        step = max(1, 1000 if getattr(self.backend, "sends_groups", False) else self.settings.record_every)
        pause_after = self.settings.pause_after_errors
        groups = getattr(self.backend, "sends_groups", False)
        early_stop = getattr(self.backend, "early_stop", False) and hasattr(self.backend, "keep_going")
        failures = {r.campaign_id: r.campaign_failures for r in rows if r.campaign_id is not None}
        leased_at = now  # when the claim's lease was last set
        paused: set[int] = set()
        pending = messages
        while pending:
            if paused:  # a campaign auto-paused mid-batch: its rows not yet sent stay due
                stopped = [m for m in pending if by_id[m.delivery_id].campaign_id in paused]
                pending = [m for m in pending if by_id[m.delivery_id].campaign_id not in paused]
                if stopped:
                    self._record(now, by_id, [], versions, report, released=stopped,
                                 why="not sent: the campaign was auto-paused")
                if not pending:
                    break
            probing = self.breaker.half_open
            size = 1 if probing else step  # half-open: one message probes the backend
            if not early_stop and not groups:
                # A backend that cannot stop inside a chunk gets no more of a campaign than it has
                # failures left before auto-pause, so the pause lands on the failure that trips it.
                margin = min((pause_after - failures.get(by_id[m.delivery_id].campaign_id, 0)
                              for m in pending[:size] if by_id[m.delivery_id].campaign_id is not None), default=size)
                size = max(1, min(size, margin))
            chunk, pending = pending[:size], pending[size:]
            chunk = self._still_enrolled(chunk, by_id, now, versions, report)
            chunk = self._conditions_hold(chunk, by_id, now, versions, report)
            if not chunk:
                continue
            results = self._send(chunk, self._pause_watch(by_id, failures) if early_stop else None)
            handed += sum(1 for r in results if not r.server)
            if len(results) < len(chunk):  # stopped early: a campaign tripped; the rest was not tried
                done = {r.delivery_id for r in results}
                pending = [m for m in chunk if m.delivery_id not in done] + pending
            if probing:  # a 4xx to the probe says the backend is still unwell, not this recipient
                for r in results:
                    if not r.ok and r.transient:
                        r.server = True
            down = next((r for r in results if r.server), None)
            if down is not None:
                wait = self.breaker.failure(down.error, down.retry_after)
                report.backend_down, report.held_for = True, wait
                log.warning("backend %s unavailable, held %.1f s (failure %d in a row); %d emails stay due: %s",
                            getattr(self.backend, "name", "?"), wait, self.breaker.failures,
                            sum(1 for r in results if not r.ok) + len(pending), down.error[:300])
            elif any(r.ok for r in results):
                lasted = self.breaker.success()
                if lasted is not None:
                    log.warning("backend %s is sending again after %.1f s", getattr(self.backend, "name", "?"), lasted)
            rest, pending = (pending, []) if down is not None else ([], pending)
            rec = self._record(now, by_id, results, versions, report, released=rest,
                               why=f"held: {down.error}" if down is not None else "")
            failures.update(rec.failures)
            paused.update(rec.paused)
            if pending and self.clock() - leased_at >= self.lease / 3:
                # The claim has taken a third of its lease (a slow server, a wait for the database):
                # renew it before the next chunk goes, and send only rows still ours.
                ids = [m.delivery_id for m in pending]
                leased_at = self.clock()
                kept = retry_unavailable(lambda: self.store.renew(ids, self.clock() + self.lease),
                                         "renewing the claim's lease", cap=self.settings.db_retry_max_seconds)
                if len(kept) < len(pending):
                    log.warning("%d claimed emails were reclaimed by another worker meanwhile; not sending them here",
                                len(pending) - len(kept))
                    pending = [m for m in pending if m.delivery_id in kept]
        self._give_back(grant, handed)
        return report

    def _give_back(self, grant: Grant | None, handed: int) -> None:
        """What was reserved but never reached the provider (fewer rows due, cancelled, deferred,
        held back while the backend is down) returns to its window. A failure here only means
        sending a little less this window: logged, never raised."""
        if grant is None or grant.granted <= handed:
            return
        try:
            self.limiter.give_back(grant, grant.granted - handed)  # type: ignore[union-attr]
        except Exception as exc:
            log.warning("unused rate-limit reservation of %d not given back: %s", grant.granted - handed,
                        " ".join(str(exc).split())[:200])

    def _still_enrolled(self, chunk: list[OutgoingMessage], by_id: dict[int, DueRow], now, versions,
                        report) -> list[OutgoingMessage]:
        """Drop messages whose patient exited since the claim (recorded as cancelled), or whose
        anchored step was re-planned meanwhile (given back at its new time, or recorded skipped):
        one query a chunk."""
        ids = [m.delivery_id for m in chunk if by_id[m.delivery_id].step_id is not None]
        gone = self.store.recheck(ids, now) if ids else {}
        if not gone:
            return chunk
        cancelled = [{"did": did, "err": why[:2000]} for did, (kind, why) in gone.items() if kind == CANCEL]
        later = [m for m in chunk if gone.get(m.delivery_id, ("",))[0] == LATER]
        report.cancelled += len(cancelled)
        self._record(now, by_id, [], versions, report, cancelled=cancelled, released=later,
                     why="re-planned after the claim: due later")
        return [m for m in chunk if m.delivery_id not in gone]

    def _conditions_hold(self, chunk: list[OutgoingMessage], by_id: dict[int, DueRow], now, versions,
                         report) -> list[OutgoingMessage]:
        """Drop (and record as skipped) messages whose step's condition is false now: one query a
        chunk for its patients' tags and attributes, and none at all when no step has a condition."""
        conditional = [m for m in chunk if by_id[m.delivery_id].condition]
        if not conditional:
            return chunk
        from campaigns.conditions import holds

        parsed = {}
        for m in conditional:
            text = by_id[m.delivery_id].condition
            if text not in parsed:
                parsed[text] = _parse_condition(text)
        facts = self.store.facts({by_id[m.delivery_id].subscriber_id for m in conditional},
                                 any(c.uses_tags for c in parsed.values() if c is not None),
                                 set().union(*(c.attribute_keys for c in parsed.values() if c is not None)))
        skipped = []
        for m in conditional:
            row = by_id[m.delivery_id]
            cond = parsed[row.condition]
            tags, attrs = facts.get(row.subscriber_id, (set(), {}))
            if cond is None or not holds(cond, tags, attrs):
                why = f"skipped: condition not met ({row.condition})" if cond is not None else \
                    f"skipped: condition {row.condition!r} cannot be read"
                skipped.append({"did": row.id, "err": why[:2000]})
        if not skipped:
            return chunk
        report.skipped += len(skipped)
        self._record(now, by_id, [], versions, report, cancelled=skipped)
        gone = {d["did"] for d in skipped}
        return [m for m in chunk if m.delivery_id not in gone]

    def _pause_watch(self, by_id: dict[int, DueRow], failures: dict[int, int]) -> Callable[[list[SendResult]], bool]:
        """For `backend.keep_going`: False as soon as a campaign reaches its auto-pause count, so
        no message after the failure that trips it goes out."""
        streak = dict(failures)
        limit, max_attempts = self.settings.pause_after_errors, self.settings.max_attempts

        def keep_going(results: list[SendResult]) -> bool:
            for r in results:
                row = by_id[r.delivery_id]
                if row.campaign_id is None or r.server:
                    continue
                if r.ok:
                    streak[row.campaign_id] = 0
                elif not r.transient or row.attempts >= max_attempts:  # a permanent recipient failure
                    streak[row.campaign_id] = streak.get(row.campaign_id, 0) + 1
                    if streak[row.campaign_id] >= limit:
                        return False
            return True

        return keep_going

    def _send(self, chunk: list[OutgoingMessage], keep_going=None) -> list[SendResult]:
        """One chunk to the backend. A configuration error found while sending (login refused, TLS
        certificate not trusted, sender refused) is logged as an error and holds the backend like
        an outage: it is fixed on the server's side as often as in ours, and sending must resume by
        itself when it is. Missing settings fail at start-up instead (the backends' constructors)."""
        if keep_going is not None:
            self.backend.keep_going = keep_going  # type: ignore[attr-defined]
        started = perf_counter()
        try:
            results = self.backend.send_batch(chunk)
            metrics.observe_send(self.backend_name, perf_counter() - started, results)
            return results
        except ConfigurationError as exc:
            log.error("backend %s refused the configuration: %s", getattr(self.backend, "name", "?"), exc)
            return [SendResult(m.delivery_id, ok=False, error=f"configuration: {exc}", transient=True, server=True)
                    for m in chunk]
        finally:
            if keep_going is not None:
                self.backend.keep_going = None  # type: ignore[attr-defined]

    # -- steps of a batch
    def _check(self, rows: list[DueRow], now: datetime):
        cancelled: list[dict] = []
        deferred: list[dict] = []
        sendable: list[DueRow] = []
        cap = self.settings.frequency_cap
        sent_times = self.store.sent_times([r.subscriber_id for r in rows], now - timedelta(hours=27))
        # A batch shares one `now`: zone arithmetic is done once per zone (and window), not per row.
        zones: dict[str | None, ZoneInfo] = {}
        day_bounds: dict[str, tuple[datetime, datetime]] = {}
        window_opens: dict[tuple[str, str], datetime] = {}
        for row in rows:
            reason = self._cancel_reason(row)
            if reason:
                cancelled.append({"did": row.id, "err": reason})
                continue
            tz = zones.get(row.tz)
            if tz is None:
                tz = zones[row.tz] = resolve_zone(row.tz, self.settings.clinic.timezone)
            window = _window(row.send_window or NEWSLETTER_DEFER_WINDOW)
            if row.subscriber_status == SubscriberStatus.PAUSED.value:
                deferred.append(self._defer(row, defer_for_cap(now, window, tz), "subscriber paused email"))
                continue
            if row.send_window:  # campaign steps keep to their window; newsletters go when scheduled
                key = (row.send_window, tz.key)
                in_window = window_opens.get(key)
                if in_window is None:
                    in_window = window_opens[key] = next_send_at(now, window, tz)
                if in_window > now:
                    deferred.append(self._defer(row, in_window, "outside the send window"))
                    continue
            bounds = day_bounds.get(tz.key)
            if bounds is None:
                bounds = day_bounds[tz.key] = local_day_bounds(now, tz)
            start, end = bounds
            today = [t for t in sent_times[row.subscriber_id] if start <= t < end]
            if len(today) >= cap:
                deferred.append(self._defer(row, defer_for_cap(now, window, tz), f"frequency cap ({cap}/day)"))
                continue
            sent_times[row.subscriber_id].append(now)  # counts against the cap for the rest of this batch
            sendable.append(row)
        return sendable, cancelled, deferred

    @staticmethod
    def _cancel_reason(row: DueRow) -> str:
        if row.suppressed:
            return "address is suppressed"
        if row.subscriber_status in (
            SubscriberStatus.UNSUBSCRIBED.value, SubscriberStatus.BOUNCED.value, SubscriberStatus.COMPLAINED.value,
            SubscriberStatus.PENDING.value,
        ):
            return f"subscriber is {row.subscriber_status}"
        if row.step_id is not None:
            if row.opted_out:
                return "unsubscribed from this campaign"
            if row.enrollment_state != "active":
                return f"enrollment {row.enrollment_state}"
        return ""

    def _defer(self, row: DueRow, until: datetime, why: str) -> dict:
        # A deferral is not an attempt: give the attempt back.
        return {"did": row.id, "due": until, "err": f"deferred: {why}", "att": row.attempts - 1}

    def _content_for(self, rows: list[DueRow]):
        step_ids = sorted({r.step_id for r in rows if r.step_id is not None})
        with self.sessions() as s:
            versions = latest_versions(s, step_ids, live=True)  # never an edit awaiting approval
            totals = dict(
                s.execute(
                    select(Step.campaign_id, func.count(Step.id))
                    .where(Step.campaign_id.in_({r.campaign_id for r in rows if r.campaign_id}))
                    .group_by(Step.campaign_id)
                ).all()
            )
            titles, own, other_titles = {}, {}, {}
            for cid, title, language, others in s.execute(
                    select(Campaign.id, Campaign.title, Campaign.language, Campaign.titles)
                    .where(Campaign.id.in_(list(totals)))):
                titles[cid], own[cid] = title, language or self.settings.clinic.language
                for lang, translated in (others or {}).items():
                    other_titles[(cid, lang)] = translated
            # A patient whose language is not the campaign's gets that language's version of a
            # step when staff uploaded one (the newest live one), else the campaign's own.
            wanted: dict[str, set[int]] = {}
            for row in rows:
                language = self._language(row)
                if row.step_id is not None and language != own.get(row.campaign_id, language):
                    wanted.setdefault(language, set()).add(row.step_id)
            translations = {(step_id, language): v for language, ids in wanted.items()
                            for step_id, v in latest_versions(s, sorted(ids), live=True, language=language).items()}
        broadcasts = self.store.broadcasts(r.broadcast_id for r in rows if r.broadcast_id)
        return versions, totals, titles, broadcasts, translations, own, other_titles

    def _language(self, row: DueRow) -> str:
        return row.language if row.language in LANGUAGES else self.settings.clinic.language

    def _attributes(self, rows: list[DueRow]) -> dict[int, dict[str, str]]:
        from subscribers.attributes import display_values

        with self.sessions() as s:
            return display_values(s, {r.subscriber_id for r in rows})

    def _build(self, rows: list[DueRow]):
        messages: list[OutgoingMessage] = []
        used_versions: dict[int, int] = {}
        failed: list[dict] = []
        if not rows:
            return messages, used_versions, failed
        versions, totals, titles, broadcasts, translations, own_language, other_titles = self._content_for(rows)
        clinic = self.settings.clinic
        shared_mode = getattr(self.backend, "uses_shared_content", False)
        per_content: dict[tuple, tuple] = {}  # one EmailContent + compiled template per step version
        patient_attrs: dict[int, dict[str, str]] | None = None  # loaded once, only if a template prints them
        for row in rows:
            try:
                language = ""  # the step version's language ("" the campaign's own)
                if row.step_id is not None and (row.step_id, self._language(row)) in translations:
                    language = self._language(row)
                ckey = ("step", row.step_id, language) if row.step_id is not None else ("broadcast", row.broadcast_id)
                if ckey in per_content:
                    content, compiled, categories, vid = per_content[ckey]
                    if vid is not None:
                        used_versions[row.id] = vid
                elif row.step_id is not None:
                    v = translations[(row.step_id, language)] if language else versions[row.step_id]
                    own = own_language.get(row.campaign_id, clinic.language)
                    content = EmailContent(
                        key=f"step:{row.step_id}:{language}-v{v.version}" if language else f"step:{row.step_id}:v{v.version}",
                        title=v.title, subject=v.subject,
                        preheader=v.preheader, body=v.body, section=v.section, position=row.step_position or 0,
                        total=totals.get(row.campaign_id, 0), template=v.template,
                        campaign_title=(language and other_titles.get((row.campaign_id, language)))
                        or titles.get(row.campaign_id, ""),
                        # the footer speaks the email's language: the version's, else the campaign's
                        language=language or ("" if own == clinic.language else own),
                    )
                    used_versions[row.id] = v.id
                    categories = provider_categories(campaign_id=row.campaign_id, step_id=row.step_id)
                    compiled = self.renderer.compile(content)
                    per_content[ckey] = (content, compiled, categories, v.id)
                else:
                    b = broadcasts[row.broadcast_id]
                    content = EmailContent(
                        key=f"broadcast:{b.id}", title=b.title, subject=b.subject, preheader=b.preheader,
                        body=b.body, template=b.template, kind="broadcast",
                    )
                    categories = provider_categories(broadcast_id=b.id)
                    compiled = self.renderer.compile(content)
                    per_content[ckey] = (content, compiled, categories, None)
                # The renderer builds the links ({base_url}/u/<token>, .../preferences/<token>): the
                # form its SendGrid substitutions need (only the token varies per recipient).
                token = self.signer.unsubscribe_token(row.subscriber_id, row.campaign_id, row.id)
                attrs = None
                if compiled.uses_attributes:  # each body differs: rendered here, not shared
                    if patient_attrs is None:
                        patient_attrs = self._attributes(rows)
                    attrs = patient_attrs.get(row.subscriber_id, {})
                if shared_mode and attrs is None:
                    shared = compiled.shared_content()
                    unsubscribe_url, subs = compiled.personalize(row.name, token)
                    html = text = ""
                    subject, preheader = shared.subject, content.preheader
                else:
                    recipient = self.renderer.recipient(row.name, row.email, token)
                    rendered = compiled.render(recipient, attrs)
                    shared, subs, unsubscribe_url = None, {}, recipient.unsubscribe_url
                    html, text, subject, preheader = rendered.html, rendered.text, rendered.subject, rendered.preheader
                # Positional, in OutgoingMessage's field order: once per recipient, and a 14-field
                # dataclass takes keywords three times slower (0.47 against 0.16 us).
                messages.append(OutgoingMessage(
                    row.id, row.email, row.name, subject, html, text, clinic.from_email, clinic.from_name,
                    clinic.reply_to, unsubscribe_url, preheader, categories, shared, subs,
                ))
            except Exception as exc:  # a template error fails this row, not the batch
                log.exception("rendering delivery %s failed", row.id)
                failed.append({"did": row.id, "err": f"render failed: {exc}"})
        return messages, used_versions, failed

    def _record(self, now, by_id: dict[int, DueRow], results: list[SendResult], versions, report: TickReport, *,
                cancelled=(), deferred=(), render_failed=(), released: list[OutgoingMessage] = (),
                why: str = "") -> RecordResult:
        sent: list[dict] = []
        failed: list[dict] = list(render_failed)
        retry: list[dict] = list(deferred)
        back: list[dict] = []
        bounces: list[dict] = []
        # per campaign, in send order: [a recipient was sent to, permanent failures since, last reason]
        outcomes: dict[int, list] = defaultdict(lambda: [False, 0, ""])
        for res in results:
            row = by_id[res.delivery_id]
            if res.ok:
                sent.append({"did": res.delivery_id, "mid": res.message_id, "vid": versions.get(res.delivery_id)})
                if row.campaign_id:
                    o = outcomes[row.campaign_id]
                    o[0], o[1] = True, 0
            elif res.server:  # the backend failed, not the recipient: the row goes back as it was
                back.append({"did": res.delivery_id, "att": max(0, row.attempts - 1), "err": f"held: {res.error}"[:2000]})
            elif res.transient and row.attempts < self.settings.max_attempts:
                wait = max(res.retry_after or 0.0, backoff(row.attempts, rng=self.rng))
                retry.append({"did": res.delivery_id, "due": now + timedelta(seconds=wait), "err": res.error[:2000],
                              "att": row.attempts})
                report.retried += 1
            else:
                prefix = f"gave up after {row.attempts} attempts: " if res.transient else ""
                failed.append({"did": res.delivery_id, "err": (prefix + res.error)[:2000]})
                if res.bounce:
                    bounces.append({"key": row.email_key, "err": res.error, "did": row.id})
                if row.campaign_id:
                    o = outcomes[row.campaign_id]
                    o[1] += 1
                    o[2] = f"delivery {row.id}: {prefix}{res.error}"
        for m in released:
            row = by_id[m.delivery_id]
            back.append({"did": row.id, "att": max(0, row.attempts - 1), "err": (why or "not sent")[:2000]})
        report.sent += len(sent)
        report.failed += len(failed)
        report.released += len(back)
        result = retry_unavailable(
            lambda: self.store.record(
                now, sent, failed, retry, list(cancelled), {k: tuple(v) for k, v in outcomes.items()},
                self.settings.pause_after_errors, released=back, bounces=bounces,
            ),
            "recording sent emails", cap=self.settings.db_retry_max_seconds,
        )
        for slug, reason in result.paused.values():
            log.warning("campaign %s %s", slug, reason)
            report.paused_campaigns.append(slug)
        self._respace(now, by_id, deferred, sent)
        return result

    def _respace(self, now, by_id: dict[int, DueRow], deferred, sent) -> None:
        """A campaign step deferred now, or sent well after its time (the worker was down), pushes
        its enrollment's later steps so each keeps its gap after it (campaigns/respace.py)."""
        moved = {d["did"]: d["due"] for d in deferred if by_id[d["did"]].step_id is not None}
        moved.update({s["did"]: now for s in sent
                      if by_id[s["did"]].step_id is not None and now - by_id[s["did"]].due_at > LATE_SEND})
        if not moved:
            return
        from campaigns.respace import respace_after

        try:
            with self.sessions.begin() as s:
                respace_after(s, moved, self.settings.clinic.timezone)
        except Exception:  # spacing is a courtesy: it must never stop sending or recording
            log.exception("re-spacing the steps after %d deferred or late emails failed", len(moved))

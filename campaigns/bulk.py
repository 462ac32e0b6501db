"""Enrolling many patients at once: everyone with a tag, or everyone in a CSV import.

Each chunk of 5,000 is its own transaction, so a long run shows real progress and a stopped one
leaves whole chunks behind; running it again continues, because a patient already enrolled is
passed over (as are unsubscribed, suppressed or opted-out ones, counted by the reason `enroll`
gives). Each chunk goes through `campaigns.enrollment.enroll_many`: the checks and rows of
one-by-one `enroll`, in a few statements per chunk.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campaigns.enrollment import NotEnrollable, enroll_many
from drip.errors import NotFoundError
from drip.models import Campaign, CampaignStatus, SubscriberTag, Tag

CHUNK = 5000
INLINE_MAX = 200  # runs this small finish within the request; larger ones get a progress page


@dataclass
class BulkProgress:
    """Shared between the worker thread and the progress page (ints: safe to read without a lock)."""

    campaign_slug: str
    what: str  # e.g. "tag “back-pain”", "file “patients.csv”"
    campaign_title: str = ""  # the progress page names the campaign, not only its slug
    total: int = 0
    done: int = 0
    enrolled: int = 0
    skipped: int = 0
    finished: bool = False
    error: str = ""
    reasons: dict[str, int] = field(default_factory=dict)


def tagged_ids(session: Session, tag: str) -> list[int]:
    tag_id = session.scalar(select(Tag.id).where(Tag.name == tag.strip()))
    if tag_id is None:
        raise NotFoundError(f"no tag named {tag.strip()[:60]!r}", where="tag")
    return list(session.scalars(select(SubscriberTag.subscriber_id).where(SubscriberTag.tag_id == tag_id)
                                .order_by(SubscriberTag.subscriber_id)))


def enroll_ids(sessions: sessionmaker[Session], campaign_id: int, ids: Sequence[int], now: datetime, *,
               clinic_tz: str, source: str, progress: BulkProgress) -> BulkProgress:
    """Enroll these subscribers chunk by chunk (each chunk commits), updating `progress`."""
    progress.total = len(ids)
    try:
        for i in range(0, len(ids), CHUNK):
            part = ids[i : i + CHUNK]
            with sessions.begin() as s:
                campaign = s.get(Campaign, campaign_id)
                if campaign is None or campaign.status != CampaignStatus.PUBLISHED.value:
                    raise NotEnrollable("the campaign is no longer published; the rest was not enrolled")
                outcome = enroll_many(s, part, campaign, now, clinic_tz=clinic_tz, source=source, chunk=len(part))
                reasons = outcome.reasons(campaign.slug)
            progress.enrolled += outcome.enrolled
            for why, n in reasons.items():
                progress.reasons[why] = progress.reasons.get(why, 0) + n
            progress.skipped += sum(outcome.skipped.values())
            progress.done += len(part)
    except NotEnrollable as exc:
        progress.error = str(exc).split(": ", 1)[-1]
    except Exception as exc:  # a background run must say it stopped, not vanish
        progress.error = f"stopped: {exc.__class__.__name__}"
        raise
    finally:
        progress.finished = True
    return progress


class BulkJobs:
    """Runs in the web process: small runs at once, large ones in a thread the progress page watches."""

    def __init__(self) -> None:
        self.jobs: dict[str, BulkProgress] = {}
        self._lock = threading.Lock()
        self._next = 0

    def start(self, run: Callable[[BulkProgress], object], progress: BulkProgress, size: int) -> tuple[str, bool]:
        """(job id, finished already). Large runs go to a daemon thread."""
        with self._lock:
            self._next += 1
            job_id = str(self._next)
            self.jobs[job_id] = progress
            if len(self.jobs) > 50:  # keep the newest
                for old in list(self.jobs)[:-50]:
                    del self.jobs[old]
        if size <= INLINE_MAX:
            run(progress)
            return job_id, True
        threading.Thread(target=run, args=(progress,), name=f"drip-bulk-{job_id}", daemon=True).start()
        return job_id, False

    def get(self, job_id: str) -> BulkProgress | None:
        return self.jobs.get(job_id)

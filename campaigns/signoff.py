"""Clinician sign-off: an editor submits, an approver reviews a diff of each step and approves or
sends it back with a comment.

- A draft is published by its approval (the editor role cannot publish at all).
- An editor's change to a published step is a `pending` version: the dispatcher sends the newest
  *live* version (`latest_versions(..., live=True)`), so patients keep getting the approved text
  until an approver approves the change. Approving makes every pending version of the campaign live.
- Owners and approvers can publish, so their own edits need no second approval. A one-person clinic
  turns the whole thing off with `require_signoff = false` (DRIP_REQUIRE_SIGNOFF): editors' edits
  then go live at once, as before.

The diff is difflib's HTML table of the text staff edit (subject, preheader, title, body), between
the newest live version (nothing, for a draft) and the newest version. difflib escapes &, < and >
in the content itself; the table goes into the page as markup.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.service import latest_versions, set_status
from drip.errors import InputError
from drip.models import Campaign, CampaignStatus, Step, StepVersion

SUBMITTED, RETURNED = "submitted", "returned"
MAX_COMMENT = 2000


def _text(v: StepVersion | None) -> list[str]:
    if v is None:
        return []
    return [f"Subject: {v.subject}", f"Preheader: {v.preheader}", f"Title: {v.title}", "", *v.body.splitlines()]


@dataclass(frozen=True)
class StepDiff:
    position: int
    changed: bool
    html: str  # difflib's table; the content in it is escaped


def pending_steps(session: Session, campaign: Campaign) -> int:
    step_ids = select(Step.id).where(Step.campaign_id == campaign.id).scalar_subquery()
    return len(session.scalars(select(StepVersion.id).where(StepVersion.step_id.in_(step_ids),
                                                            StepVersion.pending.is_(True))).all())


def needs_review(session: Session, campaign: Campaign) -> bool:
    """Is there something for an approver to approve (a draft, or edits waiting)?"""
    return campaign.status == CampaignStatus.DRAFT.value or pending_steps(session, campaign) > 0


def diffs(session: Session, campaign: Campaign) -> list[StepDiff]:
    steps = list(session.scalars(select(Step).where(Step.campaign_id == campaign.id).order_by(Step.position)))
    ids = [s.id for s in steps]
    newest = latest_versions(session, ids)
    live = latest_versions(session, ids, live=True) if campaign.status != CampaignStatus.DRAFT.value else {}
    table = difflib.HtmlDiff(wrapcolumn=70)
    out = []
    for step in steps:
        before, after = _text(live.get(step.id)), _text(newest.get(step.id))
        out.append(StepDiff(step.position, before != after,
                            table.make_table(before, after, "Last published" if live else "Nothing published yet",
                                             "For approval", context=bool(live), numlines=2)))
    return out


def translation_diffs(session: Session, campaign: Campaign) -> list[tuple[str, list[StepDiff]]]:
    """For each other language with versions waiting for approval: the diff of each waiting step
    (its newest version beside that language's live one), so an approver reads the Spanish text
    before it goes out."""
    from campaigns.service import languages_of

    steps = list(session.scalars(select(Step).where(Step.campaign_id == campaign.id).order_by(Step.position)))
    ids = [s.id for s in steps]
    table = difflib.HtmlDiff(wrapcolumn=70)
    out = []
    for language in languages_of(session, campaign):
        newest = latest_versions(session, ids, language=language)
        live = latest_versions(session, ids, live=True, language=language)
        waiting = []
        for step in steps:
            after = newest.get(step.id)
            if after is None or not after.pending:
                continue
            before = live.get(step.id)
            waiting.append(StepDiff(step.position, True, table.make_table(
                _text(before), _text(after), "Last approved" if before else "Nothing approved yet", "For approval",
                context=before is not None, numlines=2)))
        if waiting:
            out.append((language, waiting))
    return out


def submit(session: Session, campaign: Campaign) -> None:
    if campaign.status == CampaignStatus.ARCHIVED.value:
        raise InputError("an archived campaign cannot be submitted", where="review")
    if not needs_review(session, campaign):
        raise InputError("nothing to approve: no step was changed since it was published", where="review")
    campaign.review_state, campaign.review_comment = SUBMITTED, ""


def approve(session: Session, campaign: Campaign, now: datetime) -> int:
    """Publish a draft and/or make the pending edits live. Returns how many edits went live."""
    if not needs_review(session, campaign):
        raise InputError("nothing to approve", where="review")
    step_ids = select(Step.id).where(Step.campaign_id == campaign.id).scalar_subquery()
    n = session.execute(update(StepVersion).where(StepVersion.step_id.in_(step_ids), StepVersion.pending.is_(True))
                        .values(pending=False)).rowcount or 0
    if campaign.status == CampaignStatus.DRAFT.value:
        set_status(session, campaign, CampaignStatus.PUBLISHED.value, now=now)
    campaign.review_state, campaign.review_comment = "", ""
    session.flush()
    return n


def send_back(session: Session, campaign: Campaign, comment: str) -> None:
    comment = (comment or "").replace("\r\n", "\n").strip()
    if not comment:
        raise InputError("say what should change (the comment is shown to the editor)", where="comment")
    if len(comment) > MAX_COMMENT:
        raise InputError(f"the comment is longer than {MAX_COMMENT} characters", where="comment")
    if not needs_review(session, campaign):
        raise InputError("nothing to send back", where="review")
    campaign.review_state, campaign.review_comment = RETURNED, comment

"""Tools to fix a draft's structure: merge, split, drop (kept as excluded text), restore, make an
item of a paragraph and back, move up/down, undo.

Why drafts only: a published campaign's deliveries are rows per (enrollment, step), made when the
patient enrolled. Merging or reordering a live sequence would leave some patients with a step twice
(the merged text arrives again) or one skipped (a moved step's row already sent). So on a published,
paused or archived campaign every tool here is refused with a message; its text is fixed with the
step editor (a new version, under clinician sign-off). Pending deliveries are therefore never touched.
For the same reason a draft holding another language's versions (step N of the Spanish upload is
step N of the campaign) is refused too: restructure first, then upload the translation.

Every change is one function working on the stored campaign; the caller gives the transaction
(`with sessions.begin()`), the function audits itself in it. Each change stores the state before
it (`DraftChange.snapshot`), so `undo` puts it back - as new step versions, never by rewriting one.
No word is ever lost: a dropped step becomes an `ExcludedText` row shown on the campaign page; a
merged item's title starts its text's first paragraph.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from campaigns.service import languages_of, latest_versions, slugify
from campaigns.signoff import SUBMITTED
from campaigns.subjects import preheader_for, subject_for
from drip.audit import Actor, record
from drip.errors import InputError, NotFoundError
from drip.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DraftChange,
    ExcludedText,
    Step,
    StepVersion,
    utcnow,
)

ACTIONS = ("merge", "split", "drop", "restore", "make_item", "to_paragraph", "up", "down")
_SENTENCE = re.compile(r"^(.+?[.!?])(?:\s+|$)(.*)$", re.S)
DEFAULT_GAP = 2 * 24 * 60  # minutes between emails when a step is added past the known delays


@dataclass
class StepState:
    """One step as the tools see it: structure and the content of its newest version."""

    id: int | None
    kind: str
    slug: str
    delay: int
    section: str
    title: str
    subject: str
    preheader: str
    body: str
    template: str = "step"


@dataclass
class Excluded:
    from_position: int
    kind: str
    section: str
    title: str
    subject: str
    preheader: str
    body: str


@dataclass
class State:
    steps: list[StepState]
    excluded: list[Excluded] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"steps": [asdict(s) for s in self.steps], "excluded": [asdict(e) for e in self.excluded]})

    @classmethod
    def from_json(cls, text: str) -> "State":
        data = json.loads(text)
        return cls([StepState(**s) for s in data["steps"]], [Excluded(**e) for e in data["excluded"]])


def paragraphs(body: str) -> list[str]:
    """A body's paragraphs (blank-line separated, as the splitter writes them)."""
    return [p.strip() for p in re.split(r"\n\s*\n", body.replace("\r\n", "\n")) if p.strip()]


def _join(paras: list[str]) -> str:
    return "\n\n".join(p for p in paras if p)


# -- reading and writing the stored campaign


def load_state(session: Session, campaign: Campaign) -> State:
    steps = list(session.scalars(select(Step).where(Step.campaign_id == campaign.id).order_by(Step.position)))
    versions = latest_versions(session, [s.id for s in steps])
    out = [StepState(s.id, s.kind, s.slug, s.delay_minutes, versions[s.id].section, versions[s.id].title,
                     versions[s.id].subject, versions[s.id].preheader, versions[s.id].body, versions[s.id].template)
           for s in steps]
    excluded = [Excluded(e.from_position, e.kind, e.section, e.title, e.subject, e.preheader, e.body)
                for e in session.scalars(select(ExcludedText).where(ExcludedText.campaign_id == campaign.id)
                                         .order_by(ExcludedText.id))]
    return State(out, excluded)


def _unique_slugs(steps: list[StepState]) -> None:
    used: set[str] = set()
    for s in steps:
        base = s.slug or slugify(s.title or s.kind)
        slug, n = base, 2
        while slug in used:
            slug, n = f"{base}-{n}", n + 1
        s.slug = slug
        used.add(slug)


def _write(session: Session, campaign: Campaign, state: State, old_delays: list[int]) -> None:
    """Make the stored campaign equal `state`: positions 1..n, delays kept by position, a new version
    for each step whose content changed, removed steps deleted, excluded text replaced."""
    _unique_slugs(state.steps)
    existing = {s.id: s for s in session.scalars(select(Step).where(Step.campaign_id == campaign.id))}
    versions = latest_versions(session, list(existing))
    keep = {s.id for s in state.steps if s.id is not None}
    gone = [sid for sid in existing if sid not in keep]
    if gone:
        session.execute(delete(StepVersion).where(StepVersion.step_id.in_(gone)))
        session.execute(delete(Step).where(Step.id.in_(gone)))
        for sid in gone:
            session.expunge(existing.pop(sid))
    for step in existing.values():  # out of the way of the (campaign, position) unique constraint
        step.position = -step.id
    session.flush()
    delays = sorted(old_delays)
    for i, st in enumerate(state.steps):
        if i < len(delays):
            delay = delays[i]
        else:
            gap = delays[-1] - delays[-2] if len(delays) >= 2 else DEFAULT_GAP
            delay = (delays[-1] if delays else 0) + (i - len(delays) + 1) * (gap or DEFAULT_GAP)
        content = {"section": st.section, "title": st.title, "subject": st.subject, "preheader": st.preheader,
                   "body": st.body, "template": st.template}
        if st.id is None or st.id not in existing:
            step = Step(campaign_id=campaign.id, position=i + 1, kind=st.kind, slug=st.slug, delay_minutes=delay)
            session.add(step)
            session.flush()
            session.add(StepVersion(step_id=step.id, version=1, **content))
            st.id = step.id
            continue
        step = existing[st.id]
        step.position, step.kind, step.slug, step.delay_minutes = i + 1, st.kind, st.slug, delay
        current = versions[st.id]
        if any(getattr(current, k) != v for k, v in content.items()):
            session.add(StepVersion(step_id=step.id, version=current.version + 1, **content))
    session.execute(delete(ExcludedText).where(ExcludedText.campaign_id == campaign.id))
    for e in state.excluded:
        session.add(ExcludedText(campaign_id=campaign.id, **asdict(e)))
    session.flush()
    session.expire(campaign, ["steps"])


def _check_draft(session: Session, campaign: Campaign) -> None:
    if campaign.status != CampaignStatus.DRAFT.value:
        raise InputError(
            f"campaign {campaign.slug!r} is {campaign.status}: merge, split, drop, reorder and undo work on "
            "drafts only (in a live sequence patients would get an email twice or miss one); "
            "change the text with the step editor instead", where="campaign")
    step_ids = select(Step.id).where(Step.campaign_id == campaign.id).scalar_subquery()
    if session.scalar(select(func.count()).select_from(Delivery).where(Delivery.step_id.in_(step_ids))):
        raise InputError(f"campaign {campaign.slug!r} already has emails to patients: its steps cannot be "
                         "restructured", where="campaign")
    others = languages_of(session, campaign)
    if others:  # step N of a translation is step N of the campaign: a merge or drop would break that
        raise InputError(f"campaign {campaign.slug!r} holds {', '.join(others)} versions of its steps: merge, "
                         "split, drop and reorder would leave them out of step with the emails; restructure "
                         "before uploading a translation, or change the text with the step editor",
                         where="campaign")


def _apply(session: Session, campaign: Campaign, actor: Actor, action: str, target: str, after: dict,
           change, at: datetime | None) -> State:
    """Run a pure change on the loaded state, store it, remember the state before, audit."""
    _check_draft(session, campaign)
    before = load_state(session, campaign)
    new = change(State([replace(s) for s in before.steps], [replace(e) for e in before.excluded]))
    _write(session, campaign, new, [s.delay for s in before.steps])
    # A draft waiting for sign-off is not the draft the approver would now read: it goes back to
    # the editor, to be submitted again (an approver's "approve" would otherwise publish a
    # structure nobody reviewed).
    if campaign.review_state == SUBMITTED:
        campaign.review_state = ""
        after = {**after, "review": "withdrawn: the structure changed after it was submitted"}
    session.add(DraftChange(campaign_id=campaign.id, action=action, snapshot=before.to_json(), created_at=at or utcnow()))
    record(session, actor, f"draft.{action}", f"campaign {campaign.slug} {target}".strip(),
           before={"steps": len(before.steps), "excluded": len(before.excluded)},
           after={**after, "steps": len(new.steps), "excluded": len(new.excluded)}, at=at)
    session.flush()
    return new


def _index(state: State, position: int, campaign: Campaign) -> int:
    if not 1 <= position <= len(state.steps):
        raise NotFoundError(f"campaign {campaign.slug!r} has no step {position}", where="STEP")
    return position - 1


def _para_index(paras: list[str], paragraph: int, position: int) -> int:
    if not 1 <= paragraph <= len(paras):
        raise InputError(f"step {position} has no paragraph {paragraph} (it has {len(paras)})", where="PARAGRAPH")
    return paragraph - 1


def _with_title(step: StepState) -> list[str]:
    """The paragraphs of a step that stops being its own email. An item's title (article words)
    starts its first paragraph as a sentence: a lone title line would read as a stray fragment."""
    paras = paragraphs(step.body)
    head = step.title.strip() if step.kind == "item" else ""
    if not head:
        return paras
    if head[-1] not in ".!?:":
        head += "."
    return [f"{head} {paras[0]}"] + paras[1:] if paras else [head]


def _subject(title: str, section: str, campaign: Campaign, body: str) -> str:
    return subject_for(title, section, campaign.title, body)[:200]


def _preheader(title: str, section: str, body: str) -> str:
    from types import SimpleNamespace

    return preheader_for(SimpleNamespace(kind="item", title=title, section=section, text=body))[:300]


# -- the operations (each: one stored change, audited, undoable)


def merge(session: Session, campaign: Campaign, position: int, *, actor: Actor, at: datetime | None = None) -> State:
    """Step `position` and the next become one email (the first's title and subject)."""
    def change(state: State) -> State:
        i = _index(state, position, campaign)
        if i + 1 >= len(state.steps):
            raise InputError(f"step {position} is the last: there is no next step to merge with", where="STEP")
        a, b = state.steps[i], state.steps.pop(i + 1)
        a.body = _join(paragraphs(a.body) + _with_title(b))
        return state
    return _apply(session, campaign, actor, "merge", f"step {position}", {"step": position}, change, at)


def split(session: Session, campaign: Campaign, position: int, paragraph: int, *, actor: Actor,
          at: datetime | None = None) -> State:
    """Step `position` ends before its paragraph `paragraph` (1-based); the rest is a new step after it."""
    def change(state: State) -> State:
        i = _index(state, position, campaign)
        a = state.steps[i]
        paras = paragraphs(a.body)
        k = _para_index(paras, paragraph, position)
        if k == 0:
            raise InputError(f"step {position} cannot be split before its first paragraph", where="PARAGRAPH")
        title = f"{a.title} (continued)"
        b = replace(a, id=None, slug="", title=title, body=_join(paras[k:]),
                    subject=_subject(title, a.section, campaign, _join(paras[k:])),
                    preheader=_preheader(title, a.section, _join(paras[k:])))
        a.body = _join(paras[:k])
        state.steps.insert(i + 1, b)
        return state
    return _apply(session, campaign, actor, "split", f"step {position}", {"step": position, "paragraph": paragraph},
                  change, at)


def drop(session: Session, campaign: Campaign, position: int, *, actor: Actor, at: datetime | None = None) -> State:
    """Step `position` leaves the sequence; its text is kept as excluded text (restorable)."""
    def change(state: State) -> State:
        i = _index(state, position, campaign)
        if len(state.steps) == 1:
            raise InputError("the only step cannot be dropped: a campaign needs one email", where="STEP")
        s = state.steps.pop(i)
        state.excluded.append(Excluded(position, s.kind, s.section, s.title, s.subject, s.preheader, s.body))
        return state
    return _apply(session, campaign, actor, "drop", f"step {position}", {"step": position}, change, at)


def restore(session: Session, campaign: Campaign, number: int, *, actor: Actor, at: datetime | None = None) -> State:
    """Excluded text `number` (1-based, as listed) is a step again, where it was (or last)."""
    def change(state: State) -> State:
        if not 1 <= number <= len(state.excluded):
            raise NotFoundError(f"campaign {campaign.slug!r} has no excluded text {number}", where="EXCLUDED")
        e = state.excluded.pop(number - 1)
        at_index = min(max(e.from_position - 1, 0), len(state.steps))
        state.steps.insert(at_index, StepState(None, e.kind, "", 0, e.section, e.title, e.subject, e.preheader, e.body))
        return state
    return _apply(session, campaign, actor, "restore", f"excluded {number}", {"excluded": number}, change, at)


def make_item(session: Session, campaign: Campaign, position: int, paragraph: int, *, title: str = "",
              actor: Actor, at: datetime | None = None) -> State:
    """Paragraph `paragraph` of step `position` becomes an item email right after it, titled `title`
    or, without one, by the paragraph's first sentence (the rest is its text)."""
    title = " ".join(title.split())[:300]

    def change(state: State) -> State:
        i = _index(state, position, campaign)
        a = state.steps[i]
        paras = paragraphs(a.body)
        k = _para_index(paras, paragraph, position)
        if len(paras) == 1:
            raise InputError(f"paragraph {paragraph} is all of step {position}'s text: edit the step instead",
                             where="PARAGRAPH")
        text = paras.pop(k)
        new_title, body = title, text
        if not new_title:
            m = _SENTENCE.match(" ".join(text.split()))
            new_title, body = (m.group(1), m.group(2)) if m and m.group(2).strip() else (" ".join(text.split())[:120], text)
        a.body = _join(paras)
        state.steps.insert(i + 1, StepState(None, "item", "", 0, a.section, new_title,
                                            _subject(new_title, a.section, campaign, body),
                                            _preheader(new_title, a.section, body), body))
        return state
    return _apply(session, campaign, actor, "make_item", f"step {position}", {"step": position, "paragraph": paragraph},
                  change, at)


def to_paragraph(session: Session, campaign: Campaign, position: int, *, actor: Actor,
                 at: datetime | None = None) -> State:
    """Item `position` goes back into the previous step: its title starts the first paragraph."""
    def change(state: State) -> State:
        i = _index(state, position, campaign)
        b = state.steps[i]
        if b.kind != "item":
            raise InputError(f"step {position} is an {b.kind}, not an item", where="STEP")
        if i == 0:
            raise InputError(f"step {position} is the first: there is no previous step to join", where="STEP")
        a = state.steps[i - 1]
        a.body = _join(paragraphs(a.body) + _with_title(b))
        state.steps.pop(i)
        return state
    return _apply(session, campaign, actor, "to_paragraph", f"step {position}", {"step": position}, change, at)


def move(session: Session, campaign: Campaign, position: int, direction: str, *, actor: Actor,
         at: datetime | None = None) -> State:
    """Step `position` swaps with its neighbour ("up" or "down"); delays stay with the positions."""
    if direction not in ("up", "down"):
        raise InputError(f"unknown direction {direction!r} (up or down)", where="direction")

    def change(state: State) -> State:
        i = _index(state, position, campaign)
        j = i - 1 if direction == "up" else i + 1
        if not 0 <= j < len(state.steps):
            raise InputError(f"step {position} is already the {'first' if direction == 'up' else 'last'}", where="STEP")
        state.steps[i], state.steps[j] = state.steps[j], state.steps[i]
        return state
    return _apply(session, campaign, actor, direction, f"step {position}", {"step": position}, change, at)


def last_change(session: Session, campaign: Campaign) -> DraftChange | None:
    return session.scalar(select(DraftChange).where(DraftChange.campaign_id == campaign.id,
                                                    DraftChange.undone.is_(False))
                          .order_by(DraftChange.id.desc()).limit(1))


def undo(session: Session, campaign: Campaign, *, actor: Actor, at: datetime | None = None) -> str:
    """Put back the state before the last change not yet undone (as new versions). Returns its action."""
    _check_draft(session, campaign)
    change = last_change(session, campaign)
    if change is None:
        raise InputError(f"campaign {campaign.slug!r} has no change to undo", where="undo")
    current = load_state(session, campaign)
    restored = State.from_json(change.snapshot)
    _write(session, campaign, State.from_json(change.snapshot), [s.delay for s in restored.steps])
    change.undone = True
    record(session, actor, "draft.undo", f"campaign {campaign.slug}", before={"steps": len(current.steps)},
           after={"undid": change.action, "steps": len(restored.steps)}, at=at)
    session.flush()
    return change.action


def excluded_texts(session: Session, campaign: Campaign) -> list[ExcludedText]:
    return list(session.scalars(select(ExcludedText).where(ExcludedText.campaign_id == campaign.id)
                                .order_by(ExcludedText.id)))

"""`drip campaigns anchor` and `drip campaigns condition`: when a step goes, and to whom.

Kept apart from drip/commands/campaigns.py (one module per area); the commands join the same
`drip campaigns` group."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from drip.errors import InputError

console = Console()


def register(app: typer.Typer) -> None:
    from drip.commands.campaigns import campaigns_app

    campaigns_app.command("anchor")(anchor_cmd)
    campaigns_app.command("condition")(condition_cmd)


def _step(s, slug: str, position: int):
    from sqlalchemy import select

    from campaigns import service
    from drip.errors import NotFoundError
    from drip.models import Step

    c = service.get_campaign(s, slug, where="SLUG")
    step = s.scalar(select(Step).where(Step.campaign_id == c.id, Step.position == position))
    if step is None:
        raise NotFoundError(f"campaign {slug!r} has no step {position}", where="STEP")
    return c, step


def anchor_cmd(
    slug: str = typer.Argument(..., metavar="SLUG"),
    step: int = typer.Argument(..., metavar="STEP", help="Step number (see `drip campaigns show`)."),
    attribute: Optional[str] = typer.Option(None, "--attribute", help="A date attribute, e.g. first_visit."),
    before: Optional[str] = typer.Option(None, "--before", help="Offset before the date: 3d, 12h, 90m."),
    after: Optional[str] = typer.Option(None, "--after", help="Offset after the date: 1d (0d: on the day)."),
    clear: bool = typer.Option(False, "--clear", help="Back to the step's delay after enrollment."),
) -> None:
    """Send a step relative to a patient's date ("3 days before first_visit"), re-planned when it changes."""
    from campaigns.anchors import describe, parse_offset, set_anchor
    from drip.audit import Actor, record
    from drip.models import utcnow
    from drip.runtime import open_runtime

    if clear == bool(attribute) or (not clear and (before is None) == (after is None)):
        raise InputError("give --attribute with one of --before / --after, or --clear alone", where="anchor")
    offset = 0 if clear else (-parse_offset(before, "--before") if before is not None else parse_offset(after, "--after"))
    rt = open_runtime()
    with rt.sessions.begin() as s:
        c, st = _step(s, slug, step)
        was = describe(st.anchor_attribute, st.anchor_offset_minutes or 0) if st.anchor_attribute else None
        counts = set_anchor(s, st, None if clear else attribute, offset, utcnow(), clinic_tz=rt.settings.clinic.timezone)
        now_is = describe(st.anchor_attribute, offset) if st.anchor_attribute else None
        record(s, Actor.cli(), "step.anchor", f"campaign {c.slug} step {step}", before={"anchor": was},
               after={"anchor": now_is})
    if now_is is None:
        console.print(f"{slug} step {step}: sent after its delay again (for enrollments from now on)", markup=False)
    else:
        console.print(f"{slug} step {step}: {now_is}; {counts['planned']} planned, {counts['skipped']} skipped "
                      "(passed or no date)", markup=False)


def condition_cmd(
    slug: str = typer.Argument(..., metavar="SLUG"),
    step: int = typer.Argument(..., metavar="STEP", help="Step number (see `drip campaigns show`)."),
    condition: str = typer.Argument(..., metavar="CONDITION",
                                    help='e.g. "tag:back-pain", "not tag:pregnant", "attribute:age >= 65"; "" removes it.'),
) -> None:
    """Send a step only to patients for whom CONDITION holds when it is due (others: skipped, recorded)."""
    from campaigns.conditions import set_condition
    from drip.audit import Actor, record
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        c, st = _step(s, slug, step)
        was = st.condition
        cond = set_condition(s, st, condition, where="CONDITION")
        record(s, Actor.cli(), "step.condition", f"campaign {c.slug} step {step}", before={"condition": was},
               after={"condition": st.condition})
    console.print(f"{slug} step {step}: " + (f"only when {cond}" if cond else "sent to everyone"), markup=False)

"""`drip enrollments stop ...` (one patient) and `drip exits ...` (a campaign's exit conditions)."""

from __future__ import annotations

import typer

enrollments_app = typer.Typer(help="One patient's enrollments: stop one, with a reason.", no_args_is_help=True)
exits_app = typer.Typer(help="A campaign's exit conditions: tag-added, tag-removed, attribute-changed, event.",
                        no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(enrollments_app, name="enrollments")
    root.add_typer(exits_app, name="exits")


@enrollments_app.command("stop")
def stop(
    email: str = typer.Argument(..., help="The patient's address."),
    campaign: str = typer.Option(..., "--campaign", help="Campaign slug."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded on the enrollment), e.g. 'booked by phone'."),
) -> None:
    """Stop a patient's enrollment: its scheduled emails are cancelled at once."""
    from campaigns.exits import stop_in_campaign
    from campaigns.service import get_campaign
    from drip.models import utcnow
    from drip.runtime import open_runtime
    from subscribers.service import get_subscriber

    rt = open_runtime()
    try:
        with rt.sessions.begin() as s:
            sub = get_subscriber(s, email)
            done = stop_in_campaign(s, sub.id, get_campaign(s, campaign), reason, utcnow())
            address = sub.email
    finally:
        rt.close()
    typer.echo(f"stopped {address} in {done.campaign_slug!r}: {done.cancelled} scheduled email(s) cancelled "
               f"(reason: {done.reason})")


def _campaign(s, slug: str):
    from campaigns.service import get_campaign

    return get_campaign(s, slug)


@exits_app.command("add")
def add(
    campaign: str = typer.Argument(..., help="Campaign slug."),
    kind: str = typer.Argument(..., help="tag-added | tag-removed | attribute-changed | event"),
    value: str = typer.Argument(..., help="The tag, attribute key or event name, e.g. appointment_booked."),
) -> None:
    """Add an exit condition: when it happens to an enrolled patient, their enrollment stops."""
    from campaigns.exits import add_exit, describe
    from drip.models import utcnow
    from drip.runtime import open_runtime

    rt = open_runtime()
    try:
        with rt.sessions.begin() as s:
            row = add_exit(s, _campaign(s, campaign), kind, value, utcnow())
            text = describe(row.kind, row.value)
    finally:
        rt.close()
    typer.echo(f"{campaign}: patients exit on {text}")


@exits_app.command("remove")
def remove(campaign: str = typer.Argument(...), kind: str = typer.Argument(...), value: str = typer.Argument(...)) -> None:
    """Remove an exit condition."""
    from campaigns.exits import remove_exit
    from drip.errors import NotFoundError
    from drip.runtime import open_runtime

    rt = open_runtime()
    try:
        with rt.sessions.begin() as s:
            if not remove_exit(s, _campaign(s, campaign), kind, value):
                raise NotFoundError(f"{campaign!r} has no exit condition {kind} {value!r}", where="value")
    finally:
        rt.close()
    typer.echo(f"{campaign}: exit condition removed")


@exits_app.command("list")
def list_(campaign: str = typer.Argument(..., help="Campaign slug.")) -> None:
    """A campaign's exit conditions."""
    from campaigns.exits import describe, exits_of
    from drip.runtime import open_runtime

    rt = open_runtime()
    try:
        with rt.sessions() as s:
            rows = [(e.kind, e.value, describe(e.kind, e.value)) for e in exits_of(s, _campaign(s, campaign).id)]
    finally:
        rt.close()
    if not rows:
        typer.echo(f"{campaign}: no exit conditions")
    for kind, value, text in rows:
        typer.echo(f"{kind}\t{value}\t{text}")

"""`drip signup ...`: which campaign the public sign-up form starts, and the list it adds to."""

from __future__ import annotations

from typing import Optional

import typer

app = typer.Typer(help="The public sign-up form: the campaign it starts, the list it adds to.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="signup")


@app.command("set-campaign")
def set_campaign(
    slug: str = typer.Argument(..., help="Campaign slug ('' for none: DRIP_SIGNUP_CAMPAIGN applies)."),
    list_: Optional[str] = typer.Option(None, "--list", help="List (tag) a confirmed sign-up joins ('' for none)."),
    form: str = typer.Option("default", "--form", help="Form name; 'default' is /subscribe."),
) -> None:
    """Choose the campaign a confirmed sign-up starts."""
    from drip.models import utcnow
    from drip.runtime import open_runtime
    from subscribers.signup_forms import set_signup_campaign, signup_choice

    rt = open_runtime()
    try:
        with rt.sessions.begin() as s:
            set_signup_campaign(s, slug.strip() or None, utcnow(), form=form, tag=list_)
            choice = signup_choice(s, rt.settings, form)
    finally:
        rt.close()
    _print(choice)


@app.command("show")
def show(form: str = typer.Option("default", "--form", help="Form name; 'default' is /subscribe.")) -> None:
    """What a confirmed sign-up starts now (and a warning when it starts no emails)."""
    from drip.runtime import open_runtime
    from subscribers.signup_forms import signup_choice

    rt = open_runtime()
    try:
        with rt.sessions() as s:
            choice = signup_choice(s, rt.settings, form)
    finally:
        rt.close()
    _print(choice)


def _print(choice) -> None:
    if choice.campaign is not None:
        typer.echo(f"form {choice.form}: confirmed sign-ups start {choice.slug!r}"
                   + (f" and join the list {choice.tag!r}" if choice.tag else "")
                   + (" (DRIP_SIGNUP_CAMPAIGN)" if choice.origin == "setting" else ""))
    else:
        typer.echo(f"warning: form {choice.form}: {choice.warning}", err=True)

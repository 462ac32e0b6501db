"""`drip attributes ...`: the clinic's custom patient fields (define, list) and one patient's values (set)."""

from __future__ import annotations

from typing import List

import typer

app = typer.Typer(help="Custom attributes: define (text, number, date, yesno, choice), list, set.",
                  no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="attributes")


@app.command("define")
def define(
    key: str = typer.Argument(..., help="e.g. first_visit (a-z, 0-9, _)."),
    type_: str = typer.Argument(..., metavar="TYPE", help="text | number | date | yesno | choice"),
    label: str = typer.Option("", "--label", help="How staff pages name it."),
    choices: str = typer.Option("", "--choices", help="For a choice: the options, comma-separated."),
) -> None:
    """Define (or update) a custom attribute."""
    from drip.runtime import open_runtime
    from subscribers.attributes import define_attribute

    rt = open_runtime()
    try:
        with rt.sessions.begin() as s:
            d = define_attribute(s, key, type_, label=label, choices=[c for c in choices.split(",")])
            text = f"{d.key}: {d.type}" + (f" ({', '.join(d.choices)})" if d.choices else "")
    finally:
        rt.close()
    typer.echo(f"defined {text}")


@app.command("list")
def list_() -> None:
    """The defined attributes."""
    from drip.runtime import open_runtime
    from subscribers.attributes import definitions

    rt = open_runtime()
    try:
        with rt.sessions() as s:
            rows = [(d.key, d.type, d.label, ", ".join(d.choices or [])) for d in definitions(s).values()]
    finally:
        rt.close()
    if not rows:
        typer.echo("no attributes defined (drip attributes define KEY TYPE)")
    for row in rows:
        typer.echo("\t".join(row))


@app.command("set")
def set_(
    email: str = typer.Argument(..., help="The patient's address."),
    values: List[str] = typer.Argument(..., help="KEY=VALUE pairs; an empty VALUE removes it."),
) -> None:
    """Set a patient's attributes (checked against each attribute's type)."""
    from drip.errors import InputError
    from drip.models import utcnow
    from drip.runtime import open_runtime
    from subscribers.attributes import set_attributes
    from subscribers.service import get_subscriber

    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"{item[:60]!r} is not KEY=VALUE", where="values")
        pairs[key.strip()] = value
    rt = open_runtime()
    try:
        with rt.sessions.begin() as s:
            sub = get_subscriber(s, email)
            changed = set_attributes(s, sub.id, pairs, utcnow(), clinic_tz=rt.settings.clinic.timezone)
            address = sub.email
    finally:
        rt.close()
    typer.echo(f"{address}: {', '.join(changed) if changed else 'nothing'} changed")

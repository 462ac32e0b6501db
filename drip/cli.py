"""The `drip` command. Each area registers its own commands from `drip/commands/<area>.py`."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from drip.commands import COMMAND_MODULES
from drip.errors import ConfigurationError, DripError, InputError

app = typer.Typer(
    help="drip: turn clinic articles into scheduled, personalised email sequences.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root() -> None:
    """drip: turn clinic articles into scheduled, personalised email sequences."""


for _module in COMMAND_MODULES:
    _module.register(app)

err = Console(stderr=True, highlight=False, soft_wrap=True)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors are one line on stderr and exit 2, never a traceback."""
    try:
        app(args=argv, prog_name="drip", standalone_mode=True)
    except InputError as exc:
        err.print(f"drip: error: {_one_line(exc)}", markup=False)
        sys.exit(2)
    except ConfigurationError as exc:
        err.print(f"drip: configuration error: {_one_line(exc)}", markup=False)
        sys.exit(3)
    except DripError as exc:
        err.print(f"drip: {exc.__class__.__name__}: {_one_line(exc)}", markup=False)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()

"""The `drip` command. Each area registers its own commands from `drip/commands/<area>.py`."""

from __future__ import annotations

import sys

import typer

from drip.commands import COMMAND_MODULES, _typer
from drip.errors import ConfigurationError, DripError, InputError

# Every command module imports its heavy parts (SQLAlchemy, the web stack, mjml, the readers)
# inside the command that needs them, so `drip --help` and quick commands start fast
# (tests/test_startup.py guards the list, `drip bench startup` measures it).
_typer.install()  # classic help labels (TEXT, SLUG); no pydantic for values not given

app = typer.Typer(
    help="drip: turn clinic articles into scheduled, personalised email sequences.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain (click-style) help and usage errors; sub-apps inherit it from here. typer's rich help
    # imports rich.markdown and markdown-it (~90 ms) before printing a line, which alone put
    # `drip --help` past 3x a bare `import typer`.
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """drip: turn clinic articles into scheduled, personalised email sequences."""


for _module in COMMAND_MODULES:
    _module.register(app)


def _err(line: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(line, markup=False)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors are one line on stderr and exit 2, never a traceback."""
    try:
        app(args=argv, prog_name="drip", standalone_mode=True)
    except InputError as exc:
        _err(f"drip: error: {_one_line(exc)}")
        sys.exit(2)
    except ConfigurationError as exc:
        _err(f"drip: configuration error: {_one_line(exc)}")
        sys.exit(3)
    except DripError as exc:
        _err(f"drip: {exc.__class__.__name__}: {_one_line(exc)}")
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()

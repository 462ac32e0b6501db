"""`drip bench NAME [--json] [--quick]`."""

from __future__ import annotations

import importlib

import typer

from bench import BENCHES  # names only: each bench module is imported when it runs
from drip.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        name: str = typer.Argument(..., help="Benchmark name, or 'all'."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object on the last line."),
        quick: bool = typer.Option(False, "--quick", help="Smaller sizes (a smoke run)."),
        size: int = typer.Option(0, "--size", min=0, help="The larger size, for benches that take one (scale: patients)."),
    ) -> None:
        """Measure a rate against a baseline in the same run and print the ratio."""
        from rich.console import Console

        from drip.runtime import tune_worker_gc  # SQLAlchemy: not for `drip --help`

        names = list(BENCHES) if name == "all" else [name]
        for n in names:
            if n not in BENCHES:
                raise InputError(f"unknown benchmark {n!r} (known: {', '.join(sorted(BENCHES)) or 'none'})")
        console = Console()
        for n in names:
            module = importlib.import_module(BENCHES[n])
            tune_worker_gc()  # as `drip run` does once it is set up: the benches measure its paths
            result = module.run(quick=quick, size=size) if size else module.run(quick=quick)
            console.print(
                f"[bold]{result.bench}[/]: {result.label or 'drip'} {result.rate:,.0f} {result.unit} | "
                f"baseline {result.baseline_label or ''} {result.baseline:,.0f} {result.unit} | "
                f"ratio [bold]{result.ratio:,.1f}x[/]"
            )
            for k, v in result.details.items():
                console.print(f"  {k}: {v}")
            if as_json:
                print(result.json_line())

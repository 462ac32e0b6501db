"""Two adjustments to typer 0.29, made once by `install()` (drip.cli calls it); on a typer
without these hooks it does nothing.

1. Help in the style every other command line uses: `SLUG`, `TEXT`, `INTEGER`, `PATH`. typer 0.29
   labels values `<str>`, `<int>` and `<bool>` (even on flags, which take no value) and writes a
   required argument `{slug}`; a clinic's IT person knows `TEXT` and `SLUG` from click, argparse
   and man pages.
2. No pydantic for a value that is not there. typer turns a missing value into None (or ()) without
   coercing it, but builds the parameter's pydantic TypeAdapter first: for the root's unused
   `--help` on every subcommand that was 40-60 ms of imports (`drip split --help`, `drip run
   --once`). A missing value now goes through typer's pass-through coercion, which gives the same
   None; a value that is there is coerced by pydantic as before.
"""

from __future__ import annotations

from typing import Any

NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN", "path": "PATH", "file": "FILE",
         "dir": "DIRECTORY", "datetime": "DATETIME", "UUID": "UUID"}


def classic(label: str) -> str:
    """typer's `<int>` -> `INTEGER`, `<list[str]>` -> `TEXT`, `<int range>` -> `INTEGER RANGE`,
    `<a|b>` -> `[a|b]`."""
    inner = label[1:-1] if label.startswith("<") and label.endswith(">") else label
    if inner.startswith("list[") and inner.endswith("]"):
        inner = inner[5:-1]
    if inner.endswith(" range"):
        return f"{classic(inner[: -len(' range')])} RANGE"
    if "|" in inner:
        return f"[{inner}]"
    return NAMES.get(inner, inner.upper())


def install() -> None:
    from typer import core

    param = getattr(core, "_TyperParameter", None)
    argument = getattr(core, "TyperArgument", None)
    if param is None or argument is None or getattr(param, "_drip_classic", False):
        return
    if not hasattr(param, "display_type") or not hasattr(argument, "_usage_display_name"):
        return  # another typer: its own help is already classic
    typed = param.display_type

    def display_type(self: Any, ctx: Any) -> str:
        if getattr(self, "is_flag", False) or getattr(self, "count", False):
            return ""  # a flag takes no value: nothing to label
        return classic(typed(self, ctx))

    def name(self: Any) -> str:
        return self.metavar if self.metavar is not None else (self.name or "").upper()

    def usage(self: Any) -> str:
        label = name(self) if self.required else f"[{name(self)}]"
        return label + ("..." if self.nargs != 1 else "")

    param.display_type = display_type
    argument.display_name_raw = property(name)  # also names the argument in usage errors
    argument._usage_display_name = usage
    param._drip_classic = True
    _skip_pydantic_for_missing_values(param)


def _skip_pydantic_for_missing_values(param: Any) -> None:
    try:
        from typer._coercion import PassThroughRuntimeParam
    except ImportError:
        return
    if not hasattr(param, "get_runtime_param") or not hasattr(param, "process_value"):
        return
    process = param.process_value

    def process_value(self: Any, ctx: Any, value: Any) -> Any:
        if value is not None or getattr(self, "_runtime_param", False) is not None:
            return process(self, ctx, value)
        desc = self.type_descriptor
        self._runtime_param = PassThroughRuntimeParam(parameter_info=desc.parameter_info, annotation=desc.annotation)
        try:
            return process(self, ctx, value)  # RuntimeParam.coerce(None) -> None or (), never the adapter
        finally:
            self._runtime_param = None

    param.process_value = process_value

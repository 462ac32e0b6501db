"""Step conditions: "tag:back-pain", "not tag:pregnant", "attribute:age >= 65", joined by "and".

A step with a condition is sent only to patients for whom it holds at SEND time (the dispatcher
checks it per chunk, so a tag removed after enrollment counts); otherwise the row is recorded as
skipped. A small hand-written parser, no eval: the text comes from staff pages and the CLI.

Grammar (keywords lower-case, spaces around "and" and after "not"):

    condition := clause (" and " clause)*
    clause    := ["not "] ("tag:" NAME | "attribute:" KEY [OP VALUE])
    OP        := "=" | "!=" | ">=" | "<=" | ">" | "<"

`attribute:KEY` alone means "has a value". Tags match case-insensitively; = and != compare text
case-insensitively (numbers and dates by value); < and > are for number and date attributes only
(`check_against` refuses others when staff set the condition). A missing attribute makes a
comparison false (so `not attribute:insurance = medicare` holds for a patient without one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Mapping

from drip.errors import InputError

MAX_CONDITION = 300
OPS = ("!=", ">=", "<=", "=", ">", "<")  # longest first: ">=" before ">"
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CONTROL = re.compile("[\x00-\x1f\x7f\u2028\u2029]")
_HINT = 'e.g. "tag:back-pain", "not tag:pregnant", "attribute:age >= 65", joined by " and "'


@dataclass(frozen=True)
class Clause:
    negated: bool
    kind: str  # "tag" | "attribute"
    name: str  # tag name, or attribute key
    op: str | None = None  # attribute comparisons only; None: "has a value" / "has the tag"
    value: str | None = None

    def __str__(self) -> str:
        text = f"{self.kind}:{self.name}" + (f" {self.op} {self.value}" if self.op else "")
        return f"not {text}" if self.negated else text


@dataclass(frozen=True)
class Condition:
    clauses: tuple[Clause, ...]

    def __str__(self) -> str:
        return " and ".join(str(c) for c in self.clauses)

    @property
    def uses_tags(self) -> bool:
        return any(c.kind == "tag" for c in self.clauses)

    @property
    def attribute_keys(self) -> set[str]:
        return {c.name for c in self.clauses if c.kind == "attribute"}


def parse_condition(text: str, where: str = "condition") -> Condition:
    """Parse a condition; every problem is one InputError naming the bad part."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"empty condition; {_HINT}", where=where)
    if len(text) > MAX_CONDITION:
        raise InputError(f"condition longer than {MAX_CONDITION} characters", where=where)
    if _CONTROL.search(text):
        raise InputError("condition has control characters", where=where)
    flat = " ".join(text.split())
    if flat == "and" or flat.startswith("and ") or flat.endswith((" and", " not")) or " and and " in flat:
        raise InputError(f"a dangling 'and' or 'not' in {flat[:60]!r}; {_HINT}", where=where)
    clauses = [_clause(part, where) for part in re.split(r"\s+and\s+", flat)]
    return Condition(tuple(clauses))


def _clause(part: str, where: str) -> Clause:
    negated = False
    if part.startswith("not "):
        negated, part = True, part[4:].strip()
    kind, sep, rest = part.partition(":")
    if not sep or kind not in ("tag", "attribute"):
        raise InputError(f"{part[:60]!r} is not a condition; {_HINT}", where=where)
    rest = rest.strip()
    if kind == "tag":
        if not rest:
            raise InputError("tag: needs a tag name", where=where)
        if any(rest.startswith(op) or f" {op} " in f" {rest} " for op in OPS):
            raise InputError(f"a tag is there or not; compare attributes instead: {part[:60]!r}", where=where)
        return Clause(negated, "tag", rest)
    match = _KEY.match(rest)
    if match is None:
        raise InputError(f"attribute: needs a key (a-z, 0-9, _): {part[:60]!r}", where=where)
    key, tail = match.group(), rest[match.end():].strip()
    if not tail:
        return Clause(negated, "attribute", key)
    op = next((o for o in OPS if tail.startswith(o)), None)
    if op is None:
        raise InputError(f"expected one of {' '.join(OPS)} after attribute:{key}, got {tail[:30]!r}", where=where)
    value = tail[len(op):].strip()
    if not value:
        raise InputError(f"attribute:{key} {op} needs a value", where=where)
    if value[0] in "=<>!":
        raise InputError(f"bad operator in {part[:60]!r}", where=where)
    return Clause(negated, "attribute", key, op, value)


def _compare(kind: str, stored: str, op: str, wanted: str) -> bool:
    if kind == "number":
        try:
            a, b = Decimal(stored), Decimal(wanted)
        except InvalidOperation:
            return False
    elif kind == "date":
        try:
            a, b = date.fromisoformat(stored), date.fromisoformat(wanted)  # type: ignore[assignment]
        except ValueError:
            return False
    else:
        a, b = stored.casefold(), wanted.casefold()  # type: ignore[assignment]
        if op not in ("=", "!="):
            return False
    return {"=": a == b, "!=": a != b, ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]


def holds(cond: Condition, tags: set[str], attributes: Mapping[str, tuple[str, str]]) -> bool:
    """Whether `cond` is true for a patient: `tags` casefolded names; attributes key -> (type, stored)."""
    for c in cond.clauses:
        if c.kind == "tag":
            ok = c.name.casefold() in tags
        else:
            found = attributes.get(c.name)
            ok = found is not None and (c.op is None or _compare(found[0], found[1], c.op, c.value or ""))
        if ok == c.negated:
            return False
    return True


def check_against(cond: Condition, definitions: Mapping[str, object], where: str = "condition") -> Condition:
    """Refuse attributes not defined, orderings on text, and values their type does not take.

    Values are stored canonically (as `parse_value` writes them), so "Medicare" becomes the
    choice's spelling and "65.0" becomes "65"."""
    from subscribers.attributes import parse_value

    out = []
    for c in cond.clauses:
        if c.kind == "attribute":
            defn = definitions.get(c.name)
            if defn is None:
                raise InputError(f"no attribute {c.name!r} is defined", where=where)
            kind = getattr(defn, "type")
            if c.op in (">", ">=", "<", "<=") and kind not in ("number", "date"):
                raise InputError(f"attribute:{c.name} is {kind}: only = and != compare it", where=where)
            if c.op is not None:
                try:
                    value = parse_value(defn, c.value)  # type: ignore[arg-type]
                except InputError as exc:
                    raise InputError(f"attribute:{c.name}: {str(exc).split(': ', 1)[-1]}", where=where) from None
                c = Clause(c.negated, c.kind, c.name, c.op, value)
        out.append(c)
    return Condition(tuple(out))


def set_condition(session, step, text: str | None, where: str = "condition") -> Condition | None:
    """Give `step` a condition (checked against the attribute definitions), or remove it (None / "")."""
    if text is None or not text.strip():
        step.condition = None
        session.flush()
        return None
    from subscribers.attributes import definitions

    cond = check_against(parse_condition(text, where), definitions(session), where)
    step.condition = str(cond)
    session.flush()
    return cond

"""Custom attributes: fields each clinic defines (first_visit: date, insurer: choice, ...).

A definition has a key (`first_visit`: lower-case letters, digits, `_`), a type and, for a
choice, its options. Values are checked against the type and stored canonically as text:
number `12.5`, date `2027-01-12` (ISO), yes/no `yes`/`no`, choice the option as defined. An empty
value removes the attribute. `typed_values` gives them back as Python values (API), and
`display_values` as the text a template prints (`{{ patient.attributes.first_visit }}`).

Setting a value that changes it applies the campaigns' `attribute-changed` exit conditions in
the same transaction. Attributes are patient data: they go into an email's body only where a
template prints them, never into a provider's metadata (custom_args, categories, headers).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from drip.errors import InputError
from drip.models import AttributeDefinition, AttributeType, SubscriberAttribute

KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TYPES = tuple(t.value for t in AttributeType)
MAX_TEXT = 1000
MAX_CHOICES = 100
IN_CHUNK = 5000
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_YES = {"yes", "y", "true", "1", "on"}
_NO = {"no", "n", "false", "0", "off"}


def check_key(key: str) -> str:
    text = (key or "").strip().lower()
    if not KEY.match(text):
        raise InputError(f"attribute key {key[:70]!r} is not valid (a-z, 0-9 and _, starting with a letter, "
                         "at most 64)", where="key")
    return text


def define_attribute(session: Session, key: str, type_: str, *, label: str = "",
                     choices: Sequence[str] = ()) -> AttributeDefinition:
    """Create or update a definition. Changing the type of one that has values is refused."""
    key = check_key(key)
    type_ = (type_ or "").strip().lower().replace("/", "").replace("-", "")
    type_ = {"bool": "yesno", "boolean": "yesno", "int": "number", "float": "number", "string": "text"}.get(type_, type_)
    if type_ not in TYPES:
        raise InputError(f"unknown attribute type {type_!r} (one of: {', '.join(TYPES)})", where="type")
    options = [" ".join(c.split()) for c in choices if c and c.strip()]
    if type_ == AttributeType.CHOICE.value and not options:
        raise InputError("a choice attribute needs its options (e.g. --choices 'morning,afternoon')", where="choices")
    if len(options) > MAX_CHOICES or any(len(c) > 100 or _CONTROL.search(c) for c in options):
        raise InputError(f"at most {MAX_CHOICES} options of at most 100 characters each", where="choices")
    row = session.scalar(select(AttributeDefinition).where(AttributeDefinition.key == key))
    if row is None:
        row = AttributeDefinition(key=key, type=type_)
        session.add(row)
    elif row.type != type_:
        used = session.scalar(select(SubscriberAttribute.subscriber_id).where(SubscriberAttribute.attribute_id == row.id)
                              .limit(1))
        if used is not None:
            raise InputError(f"attribute {key!r} is {row.type} and has values; its type cannot change", where="type")
        row.type = type_
    row.label = " ".join((label or "").split())[:200]
    row.choices = list(dict.fromkeys(options)) if type_ == AttributeType.CHOICE.value else []
    session.flush()
    return row


def definitions(session: Session) -> dict[str, AttributeDefinition]:
    return {d.key: d for d in session.scalars(select(AttributeDefinition).order_by(AttributeDefinition.key))}


def parse_value(defn: AttributeDefinition, raw: Any) -> str | None:
    """The canonical stored text for `raw` (None: remove the value). InputError(where=key) otherwise."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    where = defn.key
    kind = defn.type
    if kind == AttributeType.YESNO.value:
        if isinstance(raw, bool):
            return "yes" if raw else "no"
        text = str(raw).strip().lower()
        if text in _YES:
            return "yes"
        if text in _NO:
            return "no"
        raise InputError(f"{str(raw)[:40]!r} is not yes or no", where=where)
    if isinstance(raw, bool):
        raise InputError(f"a {kind} is expected, not true/false", where=where)
    if kind == AttributeType.NUMBER.value:
        try:
            number = Decimal(str(raw).strip().replace(",", "") if isinstance(raw, str) else repr(raw))
        except InvalidOperation:
            raise InputError(f"{str(raw)[:40]!r} is not a number", where=where) from None
        if not number.is_finite() or abs(number) >= Decimal(10) ** 15:
            raise InputError(f"{str(raw)[:40]!r} is not a number drip keeps (finite, below 10^15)", where=where)
        text = format(number.normalize(), "f")
        return text if len(text) <= 40 else format(round(number, 6).normalize(), "f")
    if not isinstance(raw, (str, int, float)):
        raise InputError(f"a {kind} is expected", where=where)
    text = " ".join(_CONTROL.sub(" ", str(raw)).split())
    if kind == AttributeType.DATE.value:
        try:
            return date.fromisoformat(text[:10] if len(text) > 10 and text[10] in "T " else text).isoformat()
        except ValueError:
            raise InputError(f"{text[:40]!r} is not a date (use YYYY-MM-DD)", where=where) from None
    if kind == AttributeType.CHOICE.value:
        for option in defn.choices or []:
            if option.lower() == text.lower():
                return option
        raise InputError(f"{text[:40]!r} is not one of: {', '.join(defn.choices or [])}"[:300], where=where)
    if len(text) > MAX_TEXT:
        raise InputError(f"longer than {MAX_TEXT} characters", where=where)
    return text


def typed(defn_type: str, stored: str) -> Any:
    if defn_type == AttributeType.NUMBER.value:
        number = Decimal(stored)
        return int(number) if number == number.to_integral_value() else float(number)
    if defn_type == AttributeType.YESNO.value:
        return stored == "yes"
    return stored  # text, choice, date (ISO)


def display(defn_type: str, stored: str) -> str:
    """How a template prints it: dates as "12 January 2027", the rest as stored."""
    if defn_type == AttributeType.DATE.value:
        d = date.fromisoformat(stored)
        return f"{d.day} {d.strftime('%B %Y')}"
    return stored


def check_values(session: Session, values: Mapping[str, Any]) -> dict[int, tuple[str, str | None]]:
    """attribute id -> (key, canonical value or None) for a {key: raw} mapping; every problem an InputError."""
    defs = definitions(session)
    out: dict[int, tuple[str, str | None]] = {}
    for key, raw in values.items():
        defn = defs.get(str(key).strip().lower())
        if defn is None:
            known = ", ".join(defs) or "none yet (drip attributes define KEY TYPE)"
            raise InputError(f"no attribute {str(key)[:70]!r} is defined (defined: {known})"[:300],
                                where=f"attributes.{str(key)[:64]}")
        try:
            out[defn.id] = (defn.key, parse_value(defn, raw))
        except InputError as exc:
            raise InputError(str(exc).split(": ", 1)[-1], where=f"attributes.{defn.key}") from None
    return out


def set_attributes(session: Session, subscriber_id: int, values: Mapping[str, Any], now: datetime, *,
                   clinic_tz: str | None = None) -> list[str]:
    """Set (or with an empty value remove) one subscriber's attributes. Returns the keys that changed."""
    checked = check_values(session, values)
    return sorted(write_values(session, {subscriber_id: checked}, now, clinic_tz=clinic_tz))


def write_values(session: Session, rows: Mapping[int, Mapping[int, tuple[str, str | None]]],
                 now: datetime, *, clinic_tz: str | None = None) -> dict[str, list[int]]:
    """Write checked values for many subscribers (the importer's chunks); apply attribute-changed exits
    and re-plan the steps anchored to a changed date (campaigns/anchors.py), in this transaction.

    Returns key -> the subscribers whose value of it changed."""
    if not rows:
        return {}
    sids = sorted(rows)
    current: dict[tuple[int, int], str] = {}
    for i in range(0, len(sids), IN_CHUNK):
        part = sids[i : i + IN_CHUNK]
        for sid, aid, value in session.execute(
            select(SubscriberAttribute.subscriber_id, SubscriberAttribute.attribute_id, SubscriberAttribute.value)
            .where(SubscriberAttribute.subscriber_id.in_(part))
        ):
            current[(sid, aid)] = value
    inserts, updates, removes = [], [], []
    changed: dict[str, list[int]] = {}
    for sid, values in rows.items():
        for aid, (key, value) in values.items():
            old = current.get((sid, aid))
            if old == value:
                continue
            changed.setdefault(key, []).append(sid)
            if value is None:
                removes.append((sid, aid))
            elif old is None:
                inserts.append({"subscriber_id": sid, "attribute_id": aid, "value": value, "updated_at": now})
            else:
                updates.append({"sid": sid, "aid": aid, "value": value, "now": now})
    table = SubscriberAttribute.__table__
    if inserts:
        session.execute(table.insert(), inserts)
    if updates:
        from sqlalchemy import bindparam

        session.execute(
            table.update().where(table.c.subscriber_id == bindparam("sid"), table.c.attribute_id == bindparam("aid"))
            .values(value=bindparam("value"), updated_at=bindparam("now")), updates)
    for sid, aid in removes:
        session.execute(delete(SubscriberAttribute).where(SubscriberAttribute.subscriber_id == sid,
                                                          SubscriberAttribute.attribute_id == aid))
    if changed:
        from campaigns.exits import apply_exits

        for key, ids in sorted(changed.items()):
            apply_exits(session, ids, "attribute-changed", [key], now)
        from campaigns.anchors import anchored_keys, plan_anchored

        for key in anchored_keys(session, changed):  # a visit date moved: its steps move with it
            plan_anchored(session, now, subscriber_ids=changed[key], keys=[key], clinic_tz=clinic_tz)
    return changed


def _stored(session: Session, subscriber_ids: Iterable[int]) -> Iterable[tuple[int, str, str, str]]:
    ids = sorted(set(subscriber_ids))
    for i in range(0, len(ids), IN_CHUNK):
        yield from session.execute(
            select(SubscriberAttribute.subscriber_id, AttributeDefinition.key, AttributeDefinition.type,
                   SubscriberAttribute.value)
            .join(AttributeDefinition, AttributeDefinition.id == SubscriberAttribute.attribute_id)
            .where(SubscriberAttribute.subscriber_id.in_(ids[i : i + IN_CHUNK]))
            .order_by(AttributeDefinition.key)
        ).all()


def typed_values(session: Session, subscriber_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for sid, key, kind, value in _stored(session, subscriber_ids):
        out.setdefault(sid, {})[key] = typed(kind, value)
    return out


def display_values(session: Session, subscriber_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for sid, key, kind, value in _stored(session, subscriber_ids):
        out.setdefault(sid, {})[key] = display(kind, value)
    return out

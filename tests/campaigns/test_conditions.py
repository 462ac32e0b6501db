"""The step-condition parser: canonical text round-trips, anything else is one InputError (never
another exception, never eval), and evaluation follows the clauses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from campaigns.conditions import OPS, Clause, Condition, holds, parse_condition
from drip.errors import InputError

_tag = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,20}", fullmatch=True).filter(
    lambda t: t not in ("and", "not") and not t.startswith("not"))
_key = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
_value = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,12}", fullmatch=True).filter(lambda v: v != "and")
_clause = st.one_of(
    st.builds(Clause, st.booleans(), st.just("tag"), _tag),
    st.builds(Clause, st.booleans(), st.just("attribute"), _key),
    st.builds(lambda n, k, o, v: Clause(n, "attribute", k, o, v), st.booleans(), _key, st.sampled_from(OPS), _value),
)
_condition = st.lists(_clause, min_size=1, max_size=4).map(lambda cs: Condition(tuple(cs)))


@settings(max_examples=200, deadline=None)
@given(_condition)
def test_canonical_text_round_trips(cond):
    assert parse_condition(str(cond)) == cond
    assert parse_condition("  " + str(cond).replace(" ", "   ") + " ") == cond


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_parses_or_is_one_input_error(text):
    try:
        cond = parse_condition(text)
    except InputError as exc:
        assert exc.where == "condition"
    else:
        assert parse_condition(str(cond)) == cond


def test_evaluation():
    c = parse_condition("tag:back-pain and not tag:pregnant and attribute:age >= 65")
    attrs = {"age": ("number", "70")}
    assert holds(c, {"back-pain"}, attrs)
    assert not holds(c, {"back-pain", "pregnant"}, attrs)
    assert not holds(c, {"back-pain"}, {"age": ("number", "64.5")})
    assert not holds(c, {"back-pain"}, {})  # a missing attribute makes a comparison false
    assert holds(parse_condition("not attribute:insurance = medicare"), set(), {})
    assert holds(parse_condition("attribute:insurance = MEDICARE"), set(), {"insurance": ("choice", "medicare")})
    assert holds(parse_condition("attribute:first_visit < 2027-01-01"), set(), {"first_visit": ("date", "2026-12-31")})
    assert not holds(parse_condition("attribute:note > a"), set(), {"note": ("text", "b")})  # no ordering on text


@pytest.mark.parametrize("bad", ["", "   ", "tags:x", "tag:", "attribute:", "attribute:Age > 3", "attribute:age >",
                                 "attribute:age => 3", "tag:x and", "__import__('os')", "tag:a > b", "x" * 400])
def test_bad_conditions_name_the_problem(bad):
    with pytest.raises(InputError):
        parse_condition(bad)

"""Review warnings: each doubt a content person should check, beside the step it concerns."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hypothesis import given, strategies as st

from campaigns.review import review
from campaigns.split import split_file
from drip.cli import main

GOOD = ("Acupuncture triggers the release of endorphins, the body's natural painkillers. "
        "These chemicals help reduce pain and promote a sense of well-being.")


@dataclass
class S:
    text: str = GOOD
    title: str = "Release of endorphins"
    subject: str = "How acupuncture works: release of endorphins"
    kind: str = "item"


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


def kinds(*steps) -> list[tuple[int, str]]:
    return [(w.step, w.kind) for w in review(steps)]


def test_a_clean_step_has_no_warning():
    assert kinds(S(), S()) == []


@pytest.mark.parametrize("step, kind", [
    (S(text="nervous system\n\n" + GOOD), "fragment"),
    (S(text="Rest well."), "short"),
    (S(subject="How acupuncture works: the release of endorphins and other natural painkillers"), "subject"),
    (S(text=GOOD + " Here is how acupuncture work may work for pain."), "typo"),
    (S(text=GOOD + " It helps the the body."), "typo"),
    (S(text=GOOD + "\n\nShare this: Facebook Twitter"), "furniture"),
    (S(title="Leave a comment"), "furniture"),
    (S(text=GOOD + " See https://example.org/study for more."), "bare-url"),
])
def test_each_doubt_is_named_on_its_step(step, kind):
    assert kinds(S(), step) == [(2, kind)]


@pytest.mark.parametrize("text", [
    GOOD + " Progress comes day by day, and stretches go side to side.",
    GOOD + " More and more patients ask about it.",
    GOOD + " Read the [study](https://example.org/study) for more.",
    GOOD + " We had had a long winter.",
])
def test_idioms_and_links_are_not_doubts(text):
    assert kinds(S(text=text)) == []


def test_a_sign_off_repeated_in_several_emails_is_flagged_on_each():
    signed = S(text=GOOD + "\n\nWarm regards,\n\nThe Riverside team")
    assert kinds(signed, S(), signed) == [(1, "sign-off"), (3, "sign-off")]
    assert kinds(signed, S()) == []  # one sign-off, in the last email, is what a sequence should have


def test_the_seed_article_has_its_two_known_doubts(seed_path):
    warnings = review(split_file(seed_path).steps)
    assert [(w.step, w.kind) for w in warnings] == [(1, "fragment"), (1, "typo")]
    assert "nervous system" in warnings[0].message and "work may work" in warnings[1].message


def test_split_json_and_table_carry_the_warnings(seed_path, capsys):
    code, out, _ = run_main(["split", str(seed_path), "--json"], capsys)
    assert code == 0
    assert [w["kind"] for w in json.loads(out)["warnings"]] == ["fragment", "typo"]
    code, out, _ = run_main(["split", str(seed_path)], capsys)
    assert code == 0 and "2 to review before publishing" in out and "step 1: a likely typo: “work may work”" in out


@given(st.lists(st.text(max_size=400), max_size=5))
def test_any_text_is_reviewed_without_error(texts):
    warnings = review([S(text=t, title=t[:20], subject=t[:90]) for t in texts])
    assert all(1 <= w.step <= len(texts) and w.message for w in warnings)

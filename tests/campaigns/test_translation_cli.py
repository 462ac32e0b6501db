"""`drip campaigns edit SLUG STEP --language es`: the step's Spanish version from the shell, with the
step page's rules (tests/web/staff/test_step_languages.py): a new Spanish version, the own one
untouched; the delay is the step's; unknown or missing languages are one line, exit 2, nothing
written; the audit row is the web's (before -> after, the language named)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from campaigns.service import get_campaign, latest_versions
from drip.models import AuditEntry, Step
from tests.campaigns.test_translations import setup
from tests.factories import make_campaign
from tests.web.seed import snapshot
from tests.web.staff.test_staff_cli import cli_env, run_main  # noqa: F401  (fixture)


def versions(runtime, slug="onboarding", position=2):
    """(own newest, Spanish newest or None) of one step."""
    with runtime.sessions() as s:
        c = get_campaign(s, slug)
        step = s.scalar(select(Step).where(Step.campaign_id == c.id, Step.position == position))
        return (latest_versions(s, [step.id])[step.id], latest_versions(s, [step.id], language="es").get(step.id),
                step.delay_minutes)


def edits(runtime):
    with runtime.sessions() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "step.edit").order_by(AuditEntry.id)))


def test_edit_with_language_changes_only_the_spanish_version(cli_env, monkeypatch, capsys):  # noqa: F811
    setup(cli_env, languages=())
    own_before, es_before, delay_before = versions(cli_env)
    code, out, err = run_main(monkeypatch, capsys, ["campaigns", "edit", "onboarding", "2", "--language", "es",
                                                    "--subject", "Cómo ayudan las agujas"])
    assert code == 0, err
    assert out.strip() == "onboarding step 2 (Spanish): version 2"
    own, es, delay = versions(cli_env)
    assert (es.language, es.version, es.subject, es.pending) == ("es", 2, "Cómo ayudan las agujas", False)
    assert es.body == es_before.body  # only what was given changes
    assert (own.id, own.version, own.subject, delay) == (own_before.id, own_before.version, own_before.subject,
                                                         delay_before)
    [entry] = edits(cli_env)
    assert (entry.actor_kind, entry.target) == ("cli", "campaign onboarding step 2")
    assert entry.before == {"subject": es_before.subject, "version": 1, "language": "es"}
    assert entry.after == {"subject": "Cómo ayudan las agujas", "version": 2, "language": "es"}

    # a language code the import accepts ("Spanish", "es-MX") names the same version
    code, out, err = run_main(monkeypatch, capsys, ["campaigns", "edit", "onboarding", "2", "--language", "es-MX",
                                                    "--preheader", "Un resumen"])
    assert code == 0, err
    assert versions(cli_env)[1].preheader == "Un resumen" and versions(cli_env)[1].version == 3

    # the campaign's own language named: its own version, and its delay may change
    code, out, err = run_main(monkeypatch, capsys, ["campaigns", "edit", "onboarding", "2", "--language", "en",
                                                    "--subject", "How fine needles help", "--delay", "3d"])
    assert code == 0, err
    assert out.strip() == f"onboarding step 2: version {own_before.version + 1}"
    own, es, delay = versions(cli_env)
    assert (own.subject, own.language, delay) == ("How fine needles help", "", 3 * 24 * 60)
    assert (es.subject, es.version) == ("Cómo ayudan las agujas", 3)
    last = edits(cli_env)[-1]
    assert "language" not in last.after and last.after["delay_minutes"] == 3 * 24 * 60
    assert last.before["delay_minutes"] == delay_before


def test_edit_with_a_bad_language_is_one_line_exit_2_and_writes_nothing(cli_env, monkeypatch, capsys):  # noqa: F811
    setup(cli_env, languages=())
    with cli_env.sessions.begin() as s:
        make_campaign(s, "other", n_items=1, every=timedelta(days=1))  # no Spanish version
    before = snapshot(cli_env)
    for args, message in [
        (["onboarding", "2", "--language", "klingon", "--subject", "S"],
         "--language: unsupported language 'klingon' (use one of: en, es)"),
        (["onboarding", "2", "--language", "es", "--delay", "1d"],
         "--delay: the delay is shared by every language: change it without --language es"),
        (["other", "1", "--language", "es", "--subject", "S"],
         "--language: step 1 of campaign 'other' has no Spanish version: upload the Spanish article to the "
         "campaign first"),
    ]:
        code, out, err = run_main(monkeypatch, capsys, ["campaigns", "edit", *args])
        assert code == 2 and err.strip() == f"drip: error: {message}", (args, err)
        assert "Traceback" not in err and out == ""
        assert snapshot(cli_env) == before, args  # nothing written, no audit row

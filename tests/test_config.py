from pathlib import Path

import pytest

from drip.config import Settings, load_settings, secret_key
from drip.errors import ConfigurationError


def test_env_overrides_toml_and_defaults(tmp_path: Path):
    toml = tmp_path / "drip.toml"
    toml.write_text('backend = "smtp"\nbatch_size = 50\n[clinic]\nname = "Lakeside Clinic"\n')
    s = load_settings({"DRIP_BATCH_SIZE": "7", "DRIP_CLINIC_TIMEZONE": "Europe/Berlin"}, toml_path=toml)
    assert s.backend == "smtp" and s.batch_size == 7
    assert s.clinic.name == "Lakeside Clinic" and s.clinic.timezone == "Europe/Berlin"


def test_secrets_in_a_file_are_refused(tmp_path: Path):
    toml = tmp_path / "drip.toml"
    toml.write_text('sendgrid_api_key = "SG.x"\n')
    with pytest.raises(ConfigurationError, match="environment"):
        load_settings({}, toml_path=toml)


@pytest.mark.parametrize("env,match", [
    ({"DRIP_BACKEND": "carrier-pigeon"}, "unknown backend"),
    ({"DRIP_BATCH_SIZE": "many"}, "whole number"),
    ({"DRIP_TRACKING": "maybe"}, "true/false"),
    ({"DRIP_FREQUENCY_CAP": "0"}, "at least 1"),
])
def test_bad_values_fail_at_start(env, match, tmp_path):
    with pytest.raises(ConfigurationError, match=match):
        load_settings(env, toml_path=tmp_path / "none.toml")


def test_secrets_never_in_repr():
    s = Settings(secret_key="s3cret-key", sendgrid_api_key="SG.abc123", smtp_password="hunter2")
    text = repr(s)
    assert "s3cret-key" not in text and "SG.abc123" not in text and "hunter2" not in text


def test_generated_secret_key_is_kept_private(tmp_path: Path):
    s = Settings(data_dir=tmp_path / "data")
    key = secret_key(s)
    assert len(key) >= 40 and secret_key(s) == key
    assert oct((tmp_path / "data" / "secret_key").stat().st_mode)[-3:] == "600"


def test_tune_worker_gc_freezes_the_start_up_heap_and_collects_young_objects_less_often():
    import gc

    from drip.runtime import WORKER_GC_THRESHOLD, tune_worker_gc

    keep = [[i] for i in range(1000)]  # tracked objects alive at start-up
    before = gc.get_threshold()
    try:
        frozen = tune_worker_gc()
        # Not `==`: another thread may free a few frozen objects the moment the GIL is released
        # (the browser tests' session-long uvicorn thread replaces its date-header list once a
        # second), and refcounting frees frozen objects too.
        assert frozen >= 1000 and 0 <= frozen - gc.get_freeze_count() < 100
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(o) in tracked for o in keep)  # out of every generation the collector walks
        assert gc.get_threshold() == (WORKER_GC_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert gc.is_tracked(keep[0]) and id(keep[0]) in {id(o) for o in gc.get_objects()}


def test_a_default_claim_fills_one_sendgrid_request_and_stays_small_one_by_one():
    from delivery.backends.sendgrid_payload import MAX_PERSONALIZATIONS
    from delivery.dispatcher import claim_size

    class SendGridLike:
        uses_shared_content = sends_groups = True

    class SMTPLike:  # the SMTP backend takes shared content too, but sends one message at a time
        uses_shared_content, sends_groups = True, False

    assert claim_size(Settings(), SendGridLike()) == MAX_PERSONALIZATIONS
    assert claim_size(Settings(), SMTPLike()) == 500  # a slow relay must still finish within the lease
    assert claim_size(Settings(batch_size=200), SendGridLike()) == 200  # DRIP_BATCH_SIZE wins
    with pytest.raises(ConfigurationError, match="DRIP_BATCH_SIZE"):
        load_settings({"DRIP_BATCH_SIZE": "-5"}, toml_path=Path("/nonexistent/drip.toml"))

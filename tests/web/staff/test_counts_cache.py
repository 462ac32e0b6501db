"""The staff pages' counts on a large ledger (delivery/counts.py): read from stats_cache, recounted by
the worker, the page saying how old they are; counted live on a small one. `stats_live_rows=0`
makes any ledger "large" here."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from delivery import counts
from drip.config import ConfigurationError, load_settings
from drip.models import Campaign, Delivery, StatsCache
from tests.web.seed import T0
from tests.web.staff.conftest import both_databases, login
from tests.web.staff.data import seed_staff
from tests.web.staff.test_dashboard import tiles

NY = ZoneInfo("America/New_York")


def _send_all_due(runtime, ids, at) -> int:
    """Ann's rows all sent at `at`; returns how many."""
    with runtime.sessions.begin() as s:
        return s.execute(update(Delivery).where(Delivery.subscriber_id == ids.ann_id)
                         .values(status="sent", sent_at=at)).rowcount


def _cached_client(make_client, staff_user, **changes):
    client = make_client(stats_live_rows=0, **changes)
    assert login(client).status_code == 303
    return client


def _campaign_sent(html: str) -> int:
    return int(re.search(r'<span class="tile-value">(\d+)</span><span class="tile-label">Sent</span>', html).group(1))


@both_databases
def test_a_large_ledger_shows_the_stored_counts_with_their_age_until_the_worker_recounts(
        runtime, make_client, staff_user, clock):
    ids = seed_staff(runtime)
    client = _cached_client(make_client, staff_user)
    page = client.get("/staff/campaigns/onboarding").text
    assert _campaign_sent(page) == 0 and "Counts as of" in page  # counted once, stored
    with runtime.sessions() as s:
        assert s.get(StatsCache, f"steps:{ids.campaign_id}") is not None

    n = _send_all_due(runtime, ids, T0 - timedelta(hours=1))
    clock.now = T0 + timedelta(minutes=2)
    page = client.get("/staff/campaigns/onboarding").text
    assert _campaign_sent(page) == 0  # the stored count: no recount on the request path

    big = type(runtime)(settings=runtime.settings.with_(stats_live_rows=0), engine=runtime.engine,
                        sessions=runtime.sessions)
    assert counts.refresh(big, clock.now) > 0
    page = client.get("/staff/campaigns/onboarding").text
    assert _campaign_sent(page) == n > 0
    assert "Counts as of" in page and "every 5 minutes" in page


@both_databases
def test_a_small_ledger_counts_on_every_view_and_says_nothing_about_age(runtime, make_client, staff_user):
    ids = seed_staff(runtime)
    client = make_client()
    assert login(client).status_code == 303
    assert _campaign_sent(client.get("/staff/campaigns/onboarding").text) == 0
    n = _send_all_due(runtime, ids, T0 - timedelta(hours=1))
    page = client.get("/staff/campaigns/onboarding").text
    assert _campaign_sent(page) == n > 0 and "Counts as of" not in page
    with runtime.sessions() as s:
        assert s.scalars(select(StatsCache)).all() == []
    assert counts.refresh(runtime, T0) == 0  # the worker has nothing to do either


@both_databases
def test_the_recount_stores_exactly_what_a_live_count_gives(runtime):
    ids = seed_staff(runtime)
    with runtime.sessions.begin() as s:
        first = s.scalars(select(Delivery).where(Delivery.subscriber_id == ids.ann_id).order_by(Delivery.id)).first()
        first.status, first.sent_at, first.outcome = "sent", T0 - timedelta(hours=2), "bounced"
    big = type(runtime)(settings=runtime.settings.with_(stats_live_rows=0), engine=runtime.engine,
                        sessions=runtime.sessions)
    counts.refresh(big, T0)
    tz = ZoneInfo(runtime.settings.clinic.timezone)
    with runtime.sessions() as s:
        stored = {row.key: row.value for row in s.scalars(select(StatsCache))}
        live = {"campaigns": counts.campaign_counts(s, None, T0, tz), "home": counts.home_counts(s, None, T0, tz),
                "subscribers": counts.subscriber_total(s, None, T0, tz)}
        for cid in (ids.campaign_id, ids.draft_id):
            live[f"steps:{cid}"] = counts.step_counts(s, cid, T0, tz)
            live[f"activity:{cid}"] = counts.campaign_activity(s, cid, T0, tz)
    assert stored == live
    assert stored[f"steps:{ids.campaign_id}"]["steps"][str(first.step_id)]["bounced"] == 1
    assert stored["home"]["sent_today"] == 1 and stored["subscribers"]["n"] == 2


def test_a_count_older_than_three_refreshes_is_recounted_on_view(runtime, make_client, staff_user, clock):
    """The worker has stopped: the page counts for itself rather than show a stale number as current."""
    ids = seed_staff(runtime)
    client = _cached_client(make_client, staff_user)
    client.get("/staff/campaigns/onboarding")
    n = _send_all_due(runtime, ids, T0 - timedelta(hours=1))
    clock.now = T0 + timedelta(seconds=3 * runtime.settings.stats_refresh_seconds - 5)
    assert _campaign_sent(client.get("/staff/campaigns/onboarding").text) == 0
    clock.now = T0 + timedelta(seconds=3 * runtime.settings.stats_refresh_seconds + 5)
    assert _campaign_sent(client.get("/staff/campaigns/onboarding").text) == n > 0


def test_home_and_campaign_list_read_the_cache_too(runtime, make_client, staff_user, clock):
    ids = seed_staff(runtime)
    client = _cached_client(make_client, staff_user)
    assert tiles(client.get("/staff/").text)["Sent today"] == 0
    assert "Counts as of" in client.get("/staff/campaigns").text
    n = _send_all_due(runtime, ids, T0 - timedelta(minutes=30))
    home = client.get("/staff/").text
    assert tiles(home)["Sent today"] == 0 and "Counts as of" in home
    with runtime.sessions() as s:
        assert {"home", "campaigns"} <= set(s.scalars(select(StatsCache.key)))
    counts.refresh(type(runtime)(settings=runtime.settings.with_(stats_live_rows=0), engine=runtime.engine,
                                 sessions=runtime.sessions), T0)
    assert tiles(client.get("/staff/").text)["Sent today"] == n > 0


def test_the_recount_drops_a_deleted_campaigns_counts_and_keeps_an_archived_ones(runtime):
    ids = seed_staff(runtime)
    big = type(runtime)(settings=runtime.settings.with_(stats_live_rows=0), engine=runtime.engine,
                        sessions=runtime.sessions)
    counts.refresh(big, T0)
    with runtime.sessions.begin() as s:
        s.get(Campaign, ids.draft_id).status = "archived"
        s.add(StatsCache(key="steps:999999", value={"steps": {}, "enrolled": {}}, computed_at=T0))
    counts.refresh(big, T0 + timedelta(minutes=5))
    with runtime.sessions() as s:
        rows = {r.key: r.computed_at for r in s.scalars(select(StatsCache))}
    assert "steps:999999" not in rows
    assert rows[f"steps:{ids.draft_id}"] == T0  # archived: kept, not recounted
    assert rows[f"steps:{ids.campaign_id}"] == T0 + timedelta(minutes=5)


def test_the_worker_recounts_as_a_chore(runtime):
    from delivery.backends.outbox import OutboxBackend
    from delivery.dispatcher import Dispatcher
    from drip.worker import build_worker

    seed_staff(runtime)
    big = type(runtime)(settings=runtime.settings.with_(stats_live_rows=0), engine=runtime.engine,
                        sessions=runtime.sessions)
    with OutboxBackend(big.settings) as backend:
        worker = build_worker(big, Dispatcher(big, backend), 60, mode="once")
    chores = {name: (job, seconds) for name, job, seconds in worker.chores}
    assert chores["stats"][1] == runtime.settings.stats_refresh_seconds
    chores["stats"][0]()
    with runtime.sessions() as s:
        assert "campaigns" in set(s.scalars(select(StatsCache.key)))


@pytest.mark.parametrize("name, value, message", [
    ("DRIP_STATS_LIVE_ROWS", "-1", "DRIP_STATS_LIVE_ROWS must be a number of ledger rows"),
    ("DRIP_STATS_REFRESH_SECONDS", "1", "DRIP_STATS_REFRESH_SECONDS must be at least 10"),
])
def test_bad_stats_settings_are_refused_at_start(tmp_path, name, value, message):
    with pytest.raises(ConfigurationError, match=message):
        load_settings(env={name: value, "DRIP_DATA_DIR": str(tmp_path)}, toml_path=tmp_path / "none.toml")

from __future__ import annotations

import pytest

from tests.webhooks.receiver import start_receiver, stop_receiver


@pytest.fixture
def receiver():
    rec = start_receiver()
    yield rec
    stop_receiver(rec)

"""`make demo`: the whole job end to end on the embedded default, no accounts, no network.

Imports the seed article as the onboarding campaign, previews it, adds five patients in five
zones, runs a simulated clock through the whole sequence (jumping from one due time to the next),
writes every email to demo/outbox/, and prints who got which step at what local time.

The demo keeps to its own database (.drip/demo/) and folders (demo/outbox/, demo/preview/): a real
`drip run` writes to outbox/ from .drip/drip.sqlite3, and the two used to share outbox/, so real
sends overwrote the demo's emails (delivery ids start at 1 in both) and index.jsonl listed them twice.
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console

from campaigns import service
from campaigns.preview import preview_file
from campaigns.split import split_file
from delivery.backends import get_backend
from delivery.dispatcher import Dispatcher
from delivery.status import status_rows, status_table
from drip.config import load_settings
from drip.models import Tag
from drip.runtime import open_runtime
from subscribers.service import add_subscriber

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "drip" / "samples" / "acupuncture-pain-relief.txt"
PATIENTS = [
    ("maria.gonzalez@example.org", "Maria Gonzalez", "America/New_York"),
    ("james.chen@example.org", "James Chen", "America/Los_Angeles"),
    ("anna.schmidt@example.org", "Anna Schmidt", "Europe/Berlin"),
    ("yuki.tanaka@example.org", "Yuki Tanaka", "Asia/Tokyo"),
    ("liam.oconnor@example.org", "Liam O'Connor", "Australia/Sydney"),
]
START = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)  # a Tuesday; fixed so the demo is reproducible


class SimulatedClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def demo_paths(root: Path = ROOT) -> tuple[Path, Path, Path]:
    """The demo's database folder, outbox and preview: none of them a real run's."""
    return root / ".drip" / "demo", root / "demo" / "outbox", root / "demo" / "preview"


def main(root: Path = ROOT) -> int:
    console = Console(width=None if sys.stdout.isatty() else 140)
    t0 = time.perf_counter()
    data, outbox, preview = demo_paths(root)
    for path in (data, outbox):  # the demo's own: a real database or outbox/ is never touched
        shutil.rmtree(path, ignore_errors=True)
    settings = load_settings().with_(
        data_dir=data, database_url=f"sqlite:///{data / 'drip.sqlite3'}", outbox_dir=outbox, backend="outbox"
    )
    article = SEED

    draft = split_file(article)
    console.rule(f"[bold]{draft.title}[/]")
    console.print(f"{article.name}: {len(draft.steps)} steps, {len(draft.items)} of them items")
    preview_file(article, preview, name=PATIENTS[0][1], settings=settings)

    rt = open_runtime(settings)
    clock = SimulatedClock(START)
    with rt.sessions.begin() as s:
        campaign = service.create_campaign(s, draft, "onboarding", every=timedelta(days=2), source_name=article.name)
        service.set_status(s, campaign, "published")
        s.add(Tag(name="new-patients", campaign_id=campaign.id, description="Joining enrolls in onboarding"))
    for email, name, tz in PATIENTS:
        with rt.sessions.begin() as s:
            add_subscriber(s, email, name=name, tz=tz, tags=["new-patients"], source="demo", now=clock.now,
                           clinic_tz=settings.clinic.timezone)

    with get_backend(settings) as backend:
        dispatcher = Dispatcher(rt, backend, clock=clock)
        ticks = 0
        while (due := dispatcher.store.next_due_at()) is not None and ticks < 10_000:
            clock.now = max(clock.now, due)
            dispatcher.tick()
            ticks += 1

    with rt.sessions() as s:
        rows = status_rows(s, settings.clinic.timezone, limit=10_000)
    console.print(status_table(rows, title="Onboarding sequence, simulated from " + START.strftime("%Y-%m-%d %H:%M UTC")))
    sent = sum(r.status == "sent" for r in rows)
    console.print(
        f"\n{sent} of {len(rows)} emails sent over {ticks} clock ticks in {time.perf_counter() - t0:.1f} s "
        f"(simulated time: {START:%b %d} -> {clock.now:%b %d %Y})."
    )
    console.print(f"Open [bold]{outbox / 'index.html'}[/] to read every email sent,")
    console.print(f"and [bold]{preview / 'index.html'}[/] for the sequence preview.")
    rt.close()
    return 0 if sent == len(rows) and rows else 1


if __name__ == "__main__":
    sys.exit(main())

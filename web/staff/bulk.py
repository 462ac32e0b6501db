"""Bulk enrollment from the campaign page: enroll everyone with a tag, link a tag to the campaign
(joining it then enrolls automatically), and a progress page for large runs. A large CSV import
into a campaign (the subscribers page) runs in the background with the same progress page.

The staff pages run no script, so the progress page refreshes itself (<meta refresh>) until the
run has finished.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

from sqlalchemy import select
from starlette.responses import Response

from campaigns.bulk import BulkProgress, enroll_ids, tagged_ids
from campaigns.service import get_campaign
from drip.errors import InputError, NotFoundError
from drip.models import Campaign, CampaignStatus, Tag
from subscribers.importer import import_csv
from subscribers.service import clean_tag
from web.staff.base import StaffRequest
from web.staff.uploads import shown_error


def _start(req: StaffRequest, campaign: Campaign, tag: str) -> Response:
    with req.ctx.runtime.read_sessions() as db:
        ids = tagged_ids(db, tag)
    with req.ctx.runtime.sessions.begin() as db:  # the run commits in chunks of its own, in the background
        req.audit(db, "enrollment.bulk", f"campaign {campaign.slug}", after={"tag": tag, "patients": len(ids)})
    progress = BulkProgress(campaign_slug=campaign.slug, what=f"tag “{tag}”", campaign_title=campaign.title)
    run = partial(_run, req, campaign.id, ids)
    job_id, finished = req.staff.bulk.start(run, progress, len(ids))
    if finished:
        req.flash(_summary(progress), "error" if progress.error else "success")
        return req.redirect("staff:campaign", slug=campaign.slug)
    return req.redirect("staff:campaign_bulk", slug=campaign.slug, job=job_id)


def _run(req: StaffRequest, campaign_id: int, ids: list[int], progress: BulkProgress) -> None:
    enroll_ids(req.ctx.runtime.sessions, campaign_id, ids, req.now, clinic_tz=req.ctx.settings.clinic.timezone,
               source="staff-bulk", progress=progress)


def data_rows(path: Path) -> int:
    """About how many data rows a CSV file has (its lines after the header), read in 1 MiB blocks."""
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1024 * 1024):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(0, lines + (last != b"\n") - 1)


def start_import(req: StaffRequest, campaign: Campaign, path: Path, name: str, *, mode: str,
                 tags: list[str], rows: int) -> Response:
    """A CSV import into a campaign, too large to wait for, in a thread: the progress page follows
    it. The upload is copied first (the request's copy is removed when the request ends)."""
    folder = Path(tempfile.mkdtemp(prefix="drip-import-"))
    kept = folder / path.name
    shutil.copyfile(path, kept)
    kept.chmod(0o600)
    with req.ctx.runtime.sessions.begin() as db:
        req.audit(db, "subscriber.import", f"file {name}",
                  after={"campaign": campaign.slug, "rows": rows, "background": True})
    progress = BulkProgress(campaign_slug=campaign.slug, what=f"file “{name}”", campaign_title=campaign.title,
                            total=rows)
    run = partial(_run_import, req, folder, kept, name, campaign.slug, mode, tags)
    job_id, _ = req.staff.bulk.start(run, progress, max(rows, bulk_inline_max() + 1))
    return req.redirect("staff:campaign_bulk", slug=campaign.slug, job=job_id)


def bulk_inline_max() -> int:
    import campaigns.bulk

    return campaigns.bulk.INLINE_MAX


def _run_import(req: StaffRequest, folder: Path, path: Path, name: str, slug: str, mode: str, tags: list[str],
                progress: BulkProgress) -> None:
    def read(_phase: str, done: int, size: int) -> None:
        if size:
            progress.done = min(progress.total, progress.total * done // size)

    try:
        report = import_csv(req.ctx.runtime, path, mode=mode, tags=tags, progress=read, now=req.now,  # type: ignore[arg-type]
                            source="import", clinic_tz=req.ctx.settings.clinic.timezone, enroll_in=slug)
        if report.refused:
            progress.error = (f"nothing was imported: {report.error_count} problem{'s' if report.error_count != 1 else ''} "
                              "in the file (the first: " + (str(report.errors[0]) if report.errors else "?") + ")")
            progress.done = progress.total
            return
        patients = report.created + report.updated
        progress.total = progress.done = patients
        progress.enrolled = report.enrolled
        progress.skipped = max(0, patients - report.enrolled)
        if progress.skipped:
            progress.reasons["already enrolled, unsubscribed or suppressed"] = progress.skipped
        if report.skipped:
            progress.error = f"{report.skipped} row{'s' if report.skipped != 1 else ''} with a problem not imported"
    except InputError as exc:
        progress.error = shown_error(str(exc), path, name)
    except Exception as exc:  # a background run must say it stopped, not vanish
        progress.error = f"stopped: {exc.__class__.__name__}"
        raise
    finally:
        progress.finished = True
        shutil.rmtree(folder, ignore_errors=True)


def _summary(p: BulkProgress) -> str:
    text = f"{p.what}: {p.enrolled} of {p.total} patients enrolled"
    if p.skipped:
        reasons = "; ".join(f"{n} {why}" for why, n in sorted(p.reasons.items(), key=lambda kv: -kv[1])[:3])
        text += f", {p.skipped} passed over ({reasons})"
    return text + (f". {p.error}" if p.error else ".")


def published_campaign(req: StaffRequest, slug: str) -> Campaign:
    with req.ctx.runtime.read_sessions() as db:
        campaign = get_campaign(db, slug)
    if campaign.status != CampaignStatus.PUBLISHED.value:
        raise InputError(f"“{campaign.title}” is {campaign.status}: publish it before enrolling patients")
    return campaign


def campaign_enroll_tag(req: StaffRequest) -> Response:
    slug = req.request.path_params["slug"]
    try:
        campaign = published_campaign(req, slug)
        return _start(req, campaign, clean_tag(req.field("tag")))
    except NotFoundError as exc:
        if exc.where == "--campaign":
            raise
        req.flash(str(exc).split(": ", 1)[-1].capitalize() + ".", "error")
    except InputError as exc:
        req.flash(str(exc).split(": ", 1)[-1], "error")
    return req.redirect("staff:campaign", slug=slug)


def campaign_link_tag(req: StaffRequest) -> Response:
    """Link (or unlink) a tag: joining it enrolls in this campaign; optionally enroll those who have it."""
    slug = req.request.path_params["slug"]
    try:
        name = clean_tag(req.field("tag"))
        with req.ctx.runtime.sessions.begin() as db:
            campaign = get_campaign(db, slug)
            tag = db.scalar(select(Tag).where(Tag.name == name))
            if req.field("action") == "unlink":
                if tag is not None and tag.campaign_id == campaign.id:
                    tag.campaign_id = None
                    req.audit(db, "campaign.tag_unlink", f"campaign {campaign.slug}", before={"tag": name})
                req.flash(f"Joining “{name}” no longer enrolls in this campaign.")
                return req.redirect("staff:campaign", slug=slug)
            if tag is None:
                tag = Tag(name=name, description="")
                db.add(tag)
            elif tag.campaign_id not in (None, campaign.id):
                other = db.get(Campaign, tag.campaign_id)
                raise InputError(f"“{name}” already starts “{other.title if other else '?'}”; unlink it there first")
            tag.campaign_id = campaign.id
            req.audit(db, "campaign.tag_link", f"campaign {campaign.slug}", after={"tag": name})
        req.flash(f"Patients who join “{name}” are now enrolled in this campaign automatically.")
        if req.field("enroll_existing"):
            return _start(req, published_campaign(req, slug), name)
    except NotFoundError:
        raise
    except InputError as exc:
        req.flash(str(exc).split(": ", 1)[-1], "error")
    return req.redirect("staff:campaign", slug=slug)


def campaign_bulk(req: StaffRequest) -> Response:
    slug, job = req.request.path_params["slug"], req.request.path_params["job"]
    progress = req.staff.bulk.get(job)
    if progress is None or progress.campaign_slug != slug:
        raise NotFoundError("no such enrollment run (runs are kept until the server restarts)")
    # One snapshot of the run for the whole answer: the thread may finish while the page renders,
    # and a page saying "finished" must not also ask to be refreshed (or the other way round).
    # `finished` is read first: the thread sets it last, so once it is seen every count is final.
    finished = progress.finished
    snap = replace(progress, finished=finished, reasons=dict(progress.reasons))
    percent = int(100 * snap.done / snap.total) if snap.total else 100
    return req.render("bulk.html", {
        "nav": "campaigns", "slug": slug, "p": snap, "percent": percent, "summary": _summary(snap),
    }, headers=None if snap.finished else {"Refresh": "2"})

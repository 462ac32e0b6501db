"""Campaign pages: list + upload, the draft/detail page with per-step numbers, step editor,
previews at desktop and phone width, test email, publish / pause / archive.

An upload is split at once; a document the splitter cannot read shows its one-line error on the
upload page and stores nothing. A readable one becomes a *draft* campaign (nothing is sent until
it is published), and staff land on its page to review and edit the steps.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from campaigns import draft_tools, exits, service, signoff
from campaigns.schedule import format_duration, parse_duration
from campaigns.service import StepEdit, latest_versions
from campaigns.split import split_file
from delivery.counts import counted
from drip.audit import changed
from drip.permissions import Perm
from drip.errors import DripError, InputError, NotFoundError, SendError
from drip.i18n import ENGLISH_NAMES, LANGUAGES, normalize_language
from drip.models import Campaign, CampaignStatus, EnrollmentState, Step, Tag
from web.staff.base import StaffRequest
from web.staff.dashboard import campaign_chart
from web.staff.signup import signup_warning
from web.staff.emails import PREVIEW_HEADERS, audit_test_email, render_sample, send_test, step_content
from web.staff.stats import StepStats, as_of_note, campaign_summaries, step_stats
from web.staff.uploads import display_name, saved_upload, shown_error

ACTIONS = {"publish": CampaignStatus.PUBLISHED.value, "resume": CampaignStatus.PUBLISHED.value,
           "pause": CampaignStatus.PAUSED.value, "archive": CampaignStatus.ARCHIVED.value}
WIDTHS = {"desktop": 800, "mobile": 375}
DEFAULT_FORM = {"slug": "", "every": "2d", "start": "0d", "window": "mon-fri 09:00-17:00", "language": ""}


# -- list + upload


def _list_page(req: StaffRequest, *, error: str = "", form: dict[str, str] | None = None, status_code: int = 200) -> Response:
    with req.ctx.runtime.read_sessions() as db:
        counts = counted(req.ctx.runtime, db, "campaigns", None, req.now)
        return req.render("campaigns.html", {
            "nav": "campaigns", "summaries": campaign_summaries(db, counts.value),
            "counts_note": as_of_note(counts.as_of, req.ctx.settings), "error": error,
            "form": form or DEFAULT_FORM, "signup_warning": signup_warning(req, db),
            "languages": ENGLISH_NAMES, "clinic_language": req.ctx.settings.clinic.language,
        }, status_code=status_code)


def campaign_list(req: StaffRequest) -> Response:
    return _list_page(req)


def _unique_slug(db: Session, title: str) -> str:
    base = service.slugify(title, max_len=60)
    if not base[0].isalnum():
        base = "campaign"
    slug, n = base, 2
    while db.scalar(select(Campaign.id).where(Campaign.slug == slug)) is not None:
        slug, n = f"{base[:60]}-{n}", n + 1
    return slug


def campaign_upload(req: StaffRequest) -> Response:
    form = {k: req.field(k, v).strip() for k, v in DEFAULT_FORM.items()}
    upload = req.upload("article")
    if upload is None:
        return _list_page(req, error="Choose an article file to upload (.txt, .md, .html or .docx).", form=form,
                          status_code=400)
    name = display_name(upload)
    with saved_upload(upload) as path:
        try:
            language = normalize_language(form["language"][:20])
            every = parse_duration(form["every"] or "2d", field="every")
            start = parse_duration(form["start"] or "0d", field="first email after")
            draft = split_file(path, language or req.ctx.settings.clinic.language)
            with req.ctx.runtime.sessions.begin() as db:
                existing = (db.scalar(select(Campaign).where(Campaign.slug == form["slug"]))
                            if language and form["slug"] else None)
                if existing is not None:  # the same article in another language, for this campaign
                    return _add_translation(req, db, existing, draft, language, name)
                slug = form["slug"] or _unique_slug(db, draft.title)
                campaign = service.create_campaign(db, draft, slug, every=every, start=start,
                                                   window=form["window"] or DEFAULT_FORM["window"], source_name=name,
                                                   language=language)
                items = sum(1 for s in draft.steps if s.kind == "item")
                slug = campaign.slug
                req.audit(db, "campaign.import", f"campaign {slug}",
                          after={"file": name, "title": draft.title, "steps": len(draft.steps)})
        except InputError as exc:
            message = shown_error(str(exc), path, name).replace("--campaign: ", "slug: ").replace("--language: ", "")
            if form["slug"] and req.field("from_campaign", "") == "1":  # the form on the campaign page
                req.flash(message, "error")
                return req.redirect("staff:campaign", slug=form["slug"])
            return _list_page(req, error=message, form=form, status_code=400)
    req.flash(f"“{draft.title}” was split into {len(draft.steps)} emails ({items} item steps). "
              "Review them, then publish.")
    return req.redirect("staff:campaign", slug=slug)


def _add_translation(req: StaffRequest, db: Session, campaign: Campaign, draft, language: str,
                     name: str) -> Response:
    """The Spanish (...) article of a campaign: that language's version of each step. An editor's
    upload to a published campaign waits for a clinician, like an edit (campaigns/signoff.py)."""
    pending = req.ctx.settings.require_signoff and not (req.user and req.user.can(Perm.CAMPAIGNS_PUBLISH))
    n = service.add_translation(db, campaign, draft, language, clinic_language=req.ctx.settings.clinic.language,
                                pending=pending)
    req.audit(db, "campaign.translation", f"campaign {campaign.slug}",
              after={"file": name, "language": language, "steps": n})
    waiting = pending and campaign.status != CampaignStatus.DRAFT.value
    req.flash(f"The {ENGLISH_NAMES[language]} version of {n} emails was stored"
              + (": it goes out once a clinician approves it." if waiting else
                 f"; patients whose language is {ENGLISH_NAMES[language]} get it."))
    return req.redirect("staff:campaign", slug=campaign.slug)


# -- one campaign


def _campaign(db: Session, slug: str) -> Campaign:
    if len(slug) > 80:
        raise NotFoundError("no such campaign")
    return service.get_campaign(db, slug)


def _steps(db: Session, campaign: Campaign) -> list[tuple[Step, object]]:
    steps = list(db.scalars(select(Step).where(Step.campaign_id == campaign.id).order_by(Step.position)))
    versions = latest_versions(db, [s.id for s in steps])
    return [(s, versions[s.id]) for s in steps]


def _translations(db: Session, steps: list[tuple[Step, object]]) -> dict[str, dict[int, object]]:
    """language -> {step id: its newest version in that language} (steps without one left out)."""
    ids = [s.id for s, _ in steps]
    out = {}
    for language in LANGUAGES:
        versions = latest_versions(db, ids, language=language)
        if versions:
            out[language] = versions
    return out


def _warnings(steps: list[tuple[Step, object]]) -> dict[int, list]:
    """Review warnings of the stored steps, by position (campaigns/review.py)."""
    from campaigns.review import by_step

    return by_step(service.review_versions(steps))


def _plan(db: Session, campaign: Campaign, req: StaffRequest) -> dict[int, str]:
    """Step position -> "Tue 08 Dec, 09:30": when it goes for a patient (clinic's zone) enrolling today, now."""
    from zoneinfo import ZoneInfo

    tz = req.ctx.settings.clinic.timezone
    times = service.schedule_preview(db, campaign, req.now, tz)
    return {n: t if isinstance(t, str) else f"{t.astimezone(ZoneInfo(tz)):%a %d %b, %H:%M}"
            for n, t in enumerate(times, 1)}


def _plan_from(req: StaffRequest) -> str:
    """Who the "Enrolling today" column is for: "Europe/Berlin, enrolling today at 14:05"."""
    from zoneinfo import ZoneInfo

    tz = req.ctx.settings.clinic.timezone
    return f"{tz}, enrolling today at {req.now.astimezone(ZoneInfo(tz)):%H:%M}"


def campaign_cadence(req: StaffRequest) -> Response:
    """Business-day spacing and a fixed local send time (for enrollments from now on)."""
    slug = req.request.path_params["slug"]
    try:
        with req.ctx.runtime.sessions.begin() as db:
            campaign = _campaign(db, slug)
            before = {"business_days": campaign.business_days, "send_time": campaign.send_time}
            service.set_cadence(db, campaign, business_days=req.field("business_days") == "1",
                                send_time=req.field("send_time"))
            req.audit(db, "campaign.cadence", f"campaign {campaign.slug}", before=before,
                      after={"business_days": campaign.business_days, "send_time": campaign.send_time})
    except NotFoundError:
        raise
    except InputError as exc:
        req.flash(str(exc).replace("--send-time: ", "send time: "), "error")
        return req.redirect("staff:campaign", slug=slug)
    req.flash("Cadence saved: patients who enroll from now on follow the plan below.")
    return req.redirect("staff:campaign", slug=slug)


def campaign_page(req: StaffRequest) -> Response:
    slug = req.request.path_params["slug"]
    with req.ctx.runtime.read_sessions() as db:
        campaign = _campaign(db, slug)
        steps = _steps(db, campaign)
        counts = counted(req.ctx.runtime, db, "steps", campaign.id, req.now)
        stats = step_stats(db, campaign, counts.value)
        enrolled = counts.value["enrolled"]
        tags = list(db.scalars(select(Tag.name).where(Tag.campaign_id == campaign.id).order_by(Tag.name)))
        totals = StepStats(**{f: sum(getattr(stats.get(s.id, StepStats()), f) for s, _ in steps)
                              for f in StepStats.__dataclass_fields__})
        return req.render("campaign.html", {
            "nav": "campaigns", "campaign": campaign, "steps": steps, "stats": stats, "totals": totals,
            "zero": StepStats(), "items": sum(1 for s, _ in steps if s.kind == "item"),
            "enrolled_total": sum(enrolled.values()), "enrolled_active": enrolled.get(EnrollmentState.ACTIVE.value, 0),
            "actions": _actions(campaign.status), "tags": tags, "delay": _delay,
            "warnings": _warnings(steps),
            "plan": _plan(db, campaign, req),
            "plan_from": _plan_from(req),
            "activity": campaign_chart(counted(req.ctx.runtime, db, "activity", campaign.id, req.now).value),
            "counts_note": as_of_note(counts.as_of, req.ctx.settings),
            "exits": exits.exits_of(db, campaign.id), "describe_exit": exits.describe,
            "all_tags": list(db.scalars(select(Tag.name).order_by(Tag.name))),
            "pending": signoff.pending_steps(db, campaign), "signoff": req.ctx.settings.require_signoff,
            "excluded": draft_tools.excluded_texts(db, campaign), "last_change": draft_tools.last_change(db, campaign),
            "languages": ENGLISH_NAMES, "translations": _translations(db, steps),
            "own_language": service.campaign_language(campaign, req.ctx.settings.clinic.language),
        })


def campaign_retry(req: StaffRequest) -> Response:
    """POST: the campaign's failed emails become due again (staff fixed what failed them)."""
    slug = req.request.path_params["slug"]
    try:
        with req.ctx.runtime.sessions.begin() as db:
            campaign = _campaign(db, slug)
            count = service.retry_failed(db, campaign, now=req.now)
            req.audit(db, "campaign.retry", f"campaign {campaign.slug}", after={"emails": count})
            title, status = campaign.title, campaign.status
    except NotFoundError:
        raise
    except InputError as exc:
        req.flash(str(exc).removeprefix("retry: "), "error")
        return req.redirect("staff:campaign", slug=slug)
    held = " They go out once you resume sending." if status == CampaignStatus.PAUSED.value else ""
    req.flash(f"{count} failed email{'s' if count != 1 else ''} of “{title}” will be sent again.{held}")
    return req.redirect("staff:campaign", slug=slug)


def _actions(status: str) -> list[tuple[str, str]]:
    """(action, label) buttons that fit the status."""
    allowed = service.TRANSITIONS.get(status, set())
    out = []
    if CampaignStatus.PUBLISHED.value in allowed:
        out.append(("resume" if status == CampaignStatus.PAUSED.value else "publish",
                    "Resume sending" if status == CampaignStatus.PAUSED.value else "Publish"))
    if CampaignStatus.PAUSED.value in allowed:
        out.append(("pause", "Pause"))
    if CampaignStatus.ARCHIVED.value in allowed:
        out.append(("archive", "Archive"))
    return out


def _delay(minutes: int, business_days: bool = False, anchored: bool = False) -> str:
    """For the steps table: "day 14", "business day 3", "on a date" (campaigns.service.describe_delay)."""
    return service.describe_delay(minutes, business_days, anchored)


def _delay_input(minutes: int) -> str:
    """For the edit field, in days (parse_duration also reads weeks, but staff think in days)."""
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}d" if not rest else format_duration(timedelta(minutes=minutes))


def campaign_status(req: StaffRequest) -> Response:
    slug = req.request.path_params["slug"]
    action = req.field("action")
    if action not in ACTIONS:
        req.flash("That action is not known.", "error")
        return req.redirect("staff:campaign", slug=slug)
    try:
        with req.ctx.runtime.sessions.begin() as db:
            campaign = _campaign(db, slug)
            if action == "publish" and req.field("confirm") != "1":
                open_warnings = len(service.review_campaign(db, campaign))
                if open_warnings:
                    req.flash(f"{open_warnings} review warning{'s' if open_warnings != 1 else ''} still open: "
                              "check them below, then tick “I have reviewed the warnings” to publish anyway.",
                              "error")
                    return req.redirect("staff:campaign", slug=slug)
            old = campaign.status
            service.set_status(db, campaign, ACTIONS[action], now=req.now)
            req.audit(db, f"campaign.{action}", f"campaign {campaign.slug}", before={"status": old},
                      after={"status": campaign.status})
            title = campaign.title
    except NotFoundError:
        raise
    except InputError as exc:
        req.flash(str(exc).removeprefix("status: "), "error")
        return req.redirect("staff:campaign", slug=slug)
    done = {"publish": "is published: patients can now be enrolled",
            "resume": "is sending again", "pause": "is paused: nothing more goes out until you resume it",
            "archive": "is archived: emails not yet sent were cancelled"}[action]
    req.flash(f"“{title}” {done}.")
    return req.redirect("staff:campaign", slug=slug)


def campaign_exits(req: StaffRequest) -> Response:
    """Add or remove an exit condition (form fields: action, kind, value)."""
    slug = req.request.path_params["slug"]
    action = req.field("action")
    try:
        with req.ctx.runtime.sessions.begin() as db:
            campaign = _campaign(db, slug)
            if action == "remove":
                exits.remove_exit(db, campaign, req.field("kind"), req.field("value"))
                req.audit(db, "campaign.exit_remove", f"campaign {campaign.slug}",
                          before={"kind": req.field("kind"), "value": req.field("value")})
                message = "Exit condition removed."
            else:
                row = exits.add_exit(db, campaign, req.field("kind"), req.field("value"), req.now)
                req.audit(db, "campaign.exit_add", f"campaign {campaign.slug}",
                          after={"kind": row.kind, "value": row.value})
                message = f"Patients now leave this campaign on {exits.describe(row.kind, row.value)}."
    except NotFoundError:
        raise
    except InputError as exc:
        req.flash(str(exc).split(": ", 1)[-1], "error")
        return req.redirect("staff:campaign", slug=slug)
    req.flash(message)
    return req.redirect("staff:campaign", slug=slug)


# -- one step


def _step(db: Session, campaign: Campaign, position: int) -> tuple[Step, object, int]:
    steps = _steps(db, campaign)
    for step, version in steps:
        if step.position == position:
            return step, version, len(steps)
    raise NotFoundError(f"this campaign has no step {position}")


def _edit_language(req: StaffRequest, db: Session, campaign: Campaign, step: Step) -> str:
    """?language=es on the step page: the language whose version is shown and edited ("" the
    campaign's own, also when it names the own language). Unlike the preview's switch, a code that
    is unknown, or one this step has no version in, is refused (InputError), never quietly the own
    version: staff would correct the wrong text."""
    code = req.query("language", "").strip()
    if not code:
        return ""
    if code not in LANGUAGES:
        shown = code if len(code) <= 20 else code[:20] + "..."
        raise InputError(f"unsupported language {shown!r} (use one of: {', '.join(LANGUAGES)})", where="language")
    if code == service.campaign_language(campaign, req.ctx.settings.clinic.language):
        return ""
    if code not in service.step_languages(db, step.id):
        name = ENGLISH_NAMES[code]
        raise InputError(f"email {step.position} of this campaign has no {name} version: upload the {name} "
                         "article to the campaign first", where="language")
    return code


def _step_redirect(req: StaffRequest, slug: str, position: int, language: str) -> Response:
    url = req.request.app.url_path_for("staff:step", slug=slug, position=position)
    return RedirectResponse(url + (f"?language={language}" if language else ""), status_code=303)


def step_page(req: StaffRequest) -> Response:
    """The step editor; ?language=es shows and edits the step's Spanish version (its subject,
    preheader, heading and text; the delay and rules are the step's, shared by every language)."""
    slug, position = req.request.path_params["slug"], req.request.path_params["position"]
    error = ""
    submitted: dict[str, str] | None = None
    if req.request.method == "POST":
        submitted = {k: req.field(k) for k in ("subject", "preheader", "title", "body", "delay")}
        try:
            with req.ctx.runtime.sessions.begin() as db:
                campaign = _campaign(db, slug)
                old_step, old, _ = _step(db, campaign, position)
                language = _edit_language(req, db, campaign, old_step)
                if language:
                    old = latest_versions(db, [old_step.id], language=language)[old_step.id]
                # the delay is the step's, shared by every language: the Spanish form has none
                delay = None if language else parse_duration(submitted["delay"], field="delay")
                before = old.version  # type: ignore[attr-defined]
                was = {"subject": old.subject, "preheader": old.preheader, "title": old.title,  # type: ignore[attr-defined]
                       "body": old.body, "delay_minutes": old_step.delay_minutes}  # type: ignore[attr-defined]
                # An editor's change to a published step waits for an approver (campaigns/signoff.py).
                pending = req.ctx.settings.require_signoff and not (req.user and req.user.can(Perm.CAMPAIGNS_PUBLISH))
                version = service.edit_step(db, campaign, position, StepEdit(
                    subject=submitted["subject"], preheader=submitted["preheader"], title=submitted["title"],
                    body=submitted["body"], delay=delay), pending=pending, language=language)
                new_version = version.version != before
                db.flush()
                now_is = {"subject": version.subject, "preheader": version.preheader, "title": version.title,
                          "body": version.body, "delay_minutes": old_step.delay_minutes}
                old_values, new_values = changed(was, now_is)
                if version.pending:
                    new_values["pending"] = True
                if new_values:
                    tagged = {"language": language} if language else {}
                    req.audit(db, "step.edit", f"campaign {campaign.slug} step {position}",
                              before={**old_values, "version": before, **tagged},
                              after={**new_values, "version": version.version, **tagged})
        except NotFoundError:
            raise
        except InputError as exc:
            if exc.where == "language":  # no such version to show the form for
                return req.render("error.html", {"title": "Bad request", "detail": str(exc)}, status_code=400)
            error = str(exc)
        else:
            what = f"The {ENGLISH_NAMES[language]} version of email {position}" if language else f"Email {position}"
            if version.pending:
                req.flash(f"{what} saved as version {version.version}, waiting for approval: patients "
                          "keep getting the approved text until an approver approves it. Submit it when ready.")
            else:
                whom = f"{ENGLISH_NAMES[language]}-speaking patients" if language else "patients"
                req.flash(f"{what} saved." + (
                    f" This is version {version.version}: {whom} who have not received it yet get the new text."
                    if new_version else ""))
            return _step_redirect(req, slug, position, language)
    with req.ctx.runtime.read_sessions() as db:
        campaign = _campaign(db, slug)
        step, version, total = _step(db, campaign, position)
        try:
            language = _edit_language(req, db, campaign, step)
        except InputError as exc:
            return req.render("error.html", {"title": "Bad request", "detail": str(exc)}, status_code=400)
        if language:
            version = latest_versions(db, [step.id], language=language)[step.id]
        values = submitted or {
            "subject": version.subject, "preheader": version.preheader,  # type: ignore[attr-defined]
            "title": version.title, "body": version.body, "delay": _delay_input(step.delay_minutes),  # type: ignore[attr-defined]
        }
        return req.render("step.html", {
            "signoff_needed": req.ctx.settings.require_signoff and not (req.user and req.user.can(Perm.CAMPAIGNS_PUBLISH)),
            "nav": "campaigns", "campaign": campaign, "step": step, "version": version, "total": total,
            "values": values, "error": error, "paragraphs": draft_tools.paragraphs(version.body),  # type: ignore[attr-defined]
            "language": language, "languages": ENGLISH_NAMES, "step_languages": service.step_languages(db, step.id),
            "own_language": service.campaign_language(campaign, req.ctx.settings.clinic.language),
            "delay_shown": _delay_input(step.delay_minutes),
            **_rules_context(db, step),
        }, status_code=400 if error else 200)


def _rules_context(db: Session, step: Step) -> dict:
    from drip.models import AttributeDefinition

    offset = step.anchor_offset_minutes or 0
    return {
        "date_attributes": list(db.scalars(select(AttributeDefinition.key)
                                           .where(AttributeDefinition.type == "date").order_by(AttributeDefinition.key))),
        "anchor_direction": "before" if offset < 0 else "after",
        "anchor_offset": format_duration(timedelta(minutes=abs(offset))) if step.anchor_attribute else "",
    }


def step_rules(req: StaffRequest) -> Response:
    """When a step goes (its delay, or N days before/after a patient's date) and to whom (a condition)."""
    from campaigns.anchors import describe, parse_offset, set_anchor
    from campaigns.conditions import set_condition
    from drip.models import utcnow

    slug, position = req.request.path_params["slug"], req.request.path_params["position"]
    attribute = req.field("anchor_attribute").strip()
    try:
        offset = 0
        if attribute:
            raw = req.field("anchor_offset").strip() or "0d"
            offset = parse_offset(raw, "anchor_offset")
            if req.field("anchor_direction") == "before":
                offset = -offset
        with req.ctx.runtime.sessions.begin() as db:
            campaign = _campaign(db, slug)
            step, _, _ = _step(db, campaign, position)
            was = {"anchor": describe(step.anchor_attribute, step.anchor_offset_minutes or 0)
                   if step.anchor_attribute else None, "condition": step.condition}
            counts = set_anchor(db, step, attribute or None, offset, utcnow(), clinic_tz=req.ctx.settings.clinic.timezone)
            set_condition(db, step, req.field("condition"))
            now_is = {"anchor": describe(step.anchor_attribute, offset) if step.anchor_attribute else None,
                      "condition": step.condition}
            old_values, new_values = changed(was, now_is)
            if new_values or old_values:
                req.audit(db, "step.rules", f"campaign {campaign.slug} step {position}", before=old_values,
                          after=new_values)
    except NotFoundError:
        raise
    except InputError as exc:
        return req.render("error.html", {"title": "Bad request", "detail": str(exc)}, status_code=400)
    when = f"sent {now_is['anchor']}" if now_is["anchor"] else "sent after its delay"
    extra = f" ({counts['planned']} planned, {counts['skipped']} skipped: passed or no date)" if now_is["anchor"] else ""
    who = f", only when {now_is['condition']}" if now_is["condition"] else ""
    req.flash(f"Email {position}: {when}{who}.{extra}")
    return req.redirect("staff:step", slug=slug, position=position)


def step_preview(req: StaffRequest) -> Response:
    slug, position = req.request.path_params["slug"], req.request.path_params["position"]
    device = req.query("device", "desktop")
    if device not in WIDTHS:
        device = "desktop"
    with req.ctx.runtime.read_sessions() as db:
        campaign = _campaign(db, slug)
        step, version, total = _step(db, campaign, position)
        try:
            language, version = _in_language(req, db, campaign, step, version)
        except InputError as exc:
            return _bad_language(req, exc)
        content = step_content(campaign, step, version, total)  # type: ignore[arg-type]
        assert req.staff.renderer is not None
        try:
            rendered = render_sample(req.staff.renderer, content, req.ctx.settings.base_url)
            render_error = ""
        except DripError as exc:
            rendered, render_error = None, str(exc)
        return req.render("preview.html", {
            "nav": "campaigns", "campaign": campaign, "step": step, "version": version, "total": total,
            "device": device, "width": WIDTHS[device], "rendered": rendered, "render_error": render_error,
            "frame_src": req.request.app.url_path_for("staff:step_email", slug=slug, position=position)
            + (f"?language={language}" if language else ""),
            "language": language, "languages": ENGLISH_NAMES,
            "step_languages": service.languages_of(db, campaign),  # a translation covers every step
        })


def _in_language(req: StaffRequest, db: Session, campaign: Campaign, step: Step, version):
    """?language=es: that language's newest version of the step instead of the campaign's own, so
    staff read (and test-send) the email a Spanish-speaking patient gets. Refused as on the step
    page (_edit_language): an unknown code or a language the step has no version in is an
    InputError, never quietly the own version - staff would check or send the wrong text."""
    code = _edit_language(req, db, campaign, step)
    if not code:
        return "", version
    return code, latest_versions(db, [step.id], language=code)[step.id]


def _bad_language(req: StaffRequest, exc: InputError) -> Response:
    return req.render("error.html", {"title": "Bad request", "detail": str(exc)}, status_code=400)


def step_email(req: StaffRequest) -> Response:
    """The rendered email itself, for the preview iframe (framable by our own pages only)."""
    slug, position = req.request.path_params["slug"], req.request.path_params["position"]
    with req.ctx.runtime.read_sessions() as db:
        campaign = _campaign(db, slug)
        step, version, total = _step(db, campaign, position)
        try:
            language, version = _in_language(req, db, campaign, step, version)
        except InputError as exc:
            return _bad_language(req, exc)
        content = step_content(campaign, step, version, total)  # type: ignore[arg-type]
    assert req.staff.renderer is not None
    rendered = render_sample(req.staff.renderer, content, req.ctx.settings.base_url)
    return Response(rendered.html, media_type="text/html; charset=utf-8", headers=PREVIEW_HEADERS)


def step_test(req: StaffRequest) -> Response:
    slug, position = req.request.path_params["slug"], req.request.path_params["position"]
    assert req.user is not None and req.staff.renderer is not None
    with req.ctx.runtime.read_sessions() as db:
        campaign = _campaign(db, slug)
        step, version, total = _step(db, campaign, position)
        try:
            language, version = _in_language(req, db, campaign, step, version)  # the version the page showed
        except InputError as exc:
            return _bad_language(req, exc)  # nothing sent
        content = step_content(campaign, step, version, total)  # type: ignore[arg-type]
    try:
        send_test(req.ctx.settings, req.staff.renderer, content, req.user.email)
    except (SendError, DripError) as exc:
        req.flash(f"The test email could not be sent: {exc}", "error")
        sent = False
    else:
        req.flash(f"Test email sent to {req.user.email}.")
        sent = True
    audit_test_email(req, f"campaign {slug} step {position}", sent, language=language)
    back = req.field("back")
    if back == "preview":
        url = req.request.app.url_path_for("staff:step_preview", slug=slug, position=position)
        return RedirectResponse(url + (f"?language={language}" if language else ""), status_code=303)
    return _step_redirect(req, slug, position, language)

"""POST /staff/campaigns/{slug}/draft: the draft tools (campaigns/draft_tools.py) behind the buttons
on the campaign and step pages. One form field `op` names the tool; a refusal (a published
campaign, no next step, ...) comes back as the flash message on the page the form came from; a
form that is not one of ours (unknown tool, a number that is not one) is a 400."""

from __future__ import annotations

from starlette.responses import Response

from campaigns import draft_tools, service
from drip.errors import InputError, NotFoundError
from web.staff.base import StaffRequest

DONE = {
    "merge": "Email {n} and the next are one email now.",
    "split": "Email {n} was split: the rest is email {n1}.",
    "drop": "Email {n} was dropped; its text is kept below under “Excluded text”.",
    "restore": "The excluded text is an email again.",
    "make_item": "The paragraph is its own email now (email {n1}).",
    "to_paragraph": "Email {n} is a paragraph of email {n0} again.",
    "up": "Email {n} moved up.",
    "down": "Email {n} moved down.",
}


def _number(req: StaffRequest, name: str, default: int | None = None) -> int:
    raw = req.field(name).strip()
    if not raw and default is not None:
        return default
    if not raw.isdigit() or len(raw) > 6:
        raise ValueError(f"{name} must be a number")
    return int(raw)


def _bad(req: StaffRequest, detail: str) -> Response:
    return req.render("error.html", {"title": "That change is not known", "detail": detail}, status_code=400)


def draft_change(req: StaffRequest) -> Response:
    slug = req.request.path_params["slug"]
    op = req.field("op")
    if op not in DONE and op != "undo":
        return _bad(req, f"Unknown draft tool {op[:40]!r}.")
    try:
        position = _number(req, "position", 0)
        paragraph = _number(req, "paragraph", 0)
        excluded = _number(req, "excluded", 0)
    except ValueError as exc:
        return _bad(req, f"{str(exc).capitalize()}.")
    back = req.field("back")
    try:
        with req.ctx.runtime.sessions.begin() as db:
            if len(slug) > 80:
                raise NotFoundError("no such campaign")
            campaign = service.get_campaign(db, slug)
            kw = {"actor": req.actor, "at": req.now}
            if op == "undo":
                message = f"Undone: {draft_tools.undo(db, campaign, **kw).replace('_', ' ')}."
            else:
                if op == "merge":
                    draft_tools.merge(db, campaign, position, **kw)
                elif op == "split":
                    draft_tools.split(db, campaign, position, paragraph, **kw)
                elif op == "drop":
                    draft_tools.drop(db, campaign, position, **kw)
                elif op == "restore":
                    draft_tools.restore(db, campaign, excluded, **kw)
                elif op == "make_item":
                    draft_tools.make_item(db, campaign, position, paragraph, title=req.field("title")[:300], **kw)
                elif op == "to_paragraph":
                    draft_tools.to_paragraph(db, campaign, position, **kw)
                else:
                    draft_tools.move(db, campaign, position, op, **kw)
                message = DONE[op].format(n=position, n1=position + 1, n0=position - 1)
    except NotFoundError:
        raise
    except InputError as exc:
        text = str(exc).removeprefix(f"{exc.where}: ") if exc.where else str(exc)
        req.flash(text[:1].upper() + text[1:] + ".", "error")
        return _back(req, slug, back, position)
    req.flash(message)
    if back == "step" and op in ("split", "make_item"):
        return req.redirect("staff:step", slug=slug, position=position + 1)
    return req.redirect("staff:campaign", slug=slug)


def _back(req: StaffRequest, slug: str, back: str, position: int) -> Response:
    if back == "step" and position > 0:
        return req.redirect("staff:step", slug=slug, position=position)
    return req.redirect("staff:campaign", slug=slug)

#!/usr/bin/env python3
"""What a booking system's side of drip looks like: a new patient starts the sequence, and a
booked appointment stops it before the next email.

Only the Python standard library, so a vendor can drop it into any system. Settings from the
environment:

    DRIP_API_URL    where `drip serve` answers (default http://127.0.0.1:8000)
    DRIP_API_TOKEN  a token from `drip api-token create booking-system`
                    (scopes it needs: read, subscribers:write, enrollments:write, events:write)

    python examples/booking_system.py new-patient maria@example.org --name Maria --tz America/New_York --campaign onboarding
    python examples/booking_system.py booked maria@example.org            # POST .../events {"name": "appointment_booked"}
    python examples/booking_system.py stop maria@example.org --campaign onboarding --reason "booked by phone"

`booked` stops every campaign that has the event as an exit condition (`drip exits add onboarding
event appointment_booked`); `stop` stops one campaign whatever its exit conditions. Either way the
patient's emails not sent yet are cancelled at once, and one a worker is about to send is checked
again just before it goes. Exit status: 0 done, 1 the API refused (one line saying why), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class ApiError(Exception):
    pass


class Drip:
    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("detail")
            except ValueError:
                detail = exc.reason
            raise ApiError(f"{method} {path}: {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(f"{method} {path}: cannot reach {self.base}: {getattr(exc, 'reason', exc)}") from None

    def patient_id(self, email: str) -> int:
        """The subscriber id of this address (the API's search is a substring: keep the exact match)."""
        page = self.call("GET", "/subscribers", query={"search": email, "limit": 1000})
        wanted = email.strip().casefold()
        for item in page["items"]:
            if item["email"].casefold() == wanted:
                return item["id"]
        raise ApiError(f"no patient {email!r} in drip")

    def new_patient(self, email: str, name: str, tz: str | None, campaign: str | None) -> dict:
        body = {"email": email, "name": name}
        if tz:
            body["tz"] = tz
        if campaign:
            body["enroll"] = campaign
        return self.call("POST", "/subscribers", body)

    def booked(self, email: str, event: str) -> dict:
        return self.call("POST", f"/subscribers/{self.patient_id(email)}/events", {"name": event, "source": "booking"})

    def stop(self, email: str, campaign: str, reason: str) -> dict:
        path = f"/subscribers/{self.patient_id(email)}/enrollments/{urllib.parse.quote(campaign, safe='')}/stop"
        return self.call("POST", path, {"reason": reason})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A booking system talking to drip's API.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("new-patient", help="add the patient and start a campaign")
    p.add_argument("email")
    p.add_argument("--name", default="")
    p.add_argument("--tz", default=None, help="IANA zone, e.g. America/New_York")
    p.add_argument("--campaign", default=None, help="campaign slug to start (GET /api/v1/campaigns lists them)")
    p = sub.add_parser("booked", help="report a booked appointment: campaigns that exit on it stop")
    p.add_argument("email")
    p.add_argument("--event", default="appointment_booked")
    p = sub.add_parser("stop", help="stop one campaign for the patient, with a reason")
    p.add_argument("email")
    p.add_argument("--campaign", required=True)
    p.add_argument("--reason", required=True)
    args = parser.parse_args(argv)

    token = os.environ.get("DRIP_API_TOKEN", "").strip()
    if not token:
        print("booking_system: DRIP_API_TOKEN is not set (drip api-token create booking-system)", file=sys.stderr)
        return 2
    drip = Drip(os.environ.get("DRIP_API_URL", "http://127.0.0.1:8000"), token)
    try:
        if args.command == "new-patient":
            out = drip.new_patient(args.email, args.name, args.tz, args.campaign)
            enrollment = out.get("enrollment") or {}
            print(f"patient {out['id']} {out['email']}" + (
                f": {enrollment['campaign']} started, {enrollment['scheduled']} emails scheduled" if enrollment else ""))
        elif args.command == "booked":
            out = drip.booked(args.email, args.event)
            stopped = out["exited"]
            print(f"event {out['name']} recorded for patient {out['subscriber_id']}; " + (
                "stopped: " + ", ".join(e["campaign"] for e in stopped) if stopped else "no campaign exits on it"))
        else:
            out = drip.stop(args.email, args.campaign, args.reason)
            print(f"{out['campaign']} stopped for {args.email}: {out['exit_reason']}")
    except ApiError as exc:
        print(f"booking_system: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

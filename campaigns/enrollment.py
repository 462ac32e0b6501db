"""Enrollment: a subscriber joins a campaign and gets one delivery row per step (lead owns this file)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session


def enroll_for_tags(session: Session, subscriber_ids: list[int], tag_ids: list[int], now: datetime) -> int:
    """Enroll these subscribers in every published campaign tied to these tags. Returns enrollments made."""
    raise NotImplementedError  # filled in by the lead

"""The values crossing the backend boundary."""

from __future__ import annotations

from dataclasses import fields

from delivery.types import OutgoingMessage, SendResult


def test_outgoing_message_field_order_is_what_the_dispatcher_passes_positionally():
    assert [f.name for f in fields(OutgoingMessage)] == [
        "delivery_id", "to_email", "to_name", "subject", "html", "text", "from_email", "from_name", "reply_to",
        "unsubscribe_url", "preheader", "categories", "shared", "substitutions",
    ]


def test_per_recipient_values_are_slotted():
    message = OutgoingMessage(1, "a@example.com", "A", "s", "h", "t", "f@example.com", "F", "", "https://x/u/t")
    assert not hasattr(message, "__dict__") and message.substitutions == {} and message.categories == ()
    assert not hasattr(SendResult(1, True), "__dict__")

"""Outbound webhooks: signed events (Standard Webhooks) to endpoints the clinic configures.

outbox.py (events written in the caller's transaction), derived.py (email.sent and
enrollment.completed written from the ledger's marks by the webhook job), signing.py, targets.py (private and
loopback addresses refused), sender.py (the worker's delivery job), endpoints.py (add, rotate,
disable, replay).
"""

"""Delivery: the ledger's dispatcher, the backends (outbox, SMTP, SendGrid) and provider events."""

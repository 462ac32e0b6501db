"""Subscribers: people, lists/tags, CSV import, consent, unsubscribe/preferences, suppression."""

"""Asynchronous bounces and complaints: read a bounce mailbox, match each report to the delivery,
act on it through the normalised event path (delivery/events.py). See README "Bounces"."""

"""Notifications: email and signed webhooks for events of the log, routed by event type.

The event log is the source of truth: a dispatcher (``kiosk.notify.dispatcher``) tails the
``events`` table after a persisted cursor and writes one delivery row per (event, target)
into an outbox in the same transaction that moves the cursor, then sends due deliveries
with retries and exponential backoff. Each module does one job; this package's ``__init__``
imports nothing so ``kiosk.config`` can import the settings without the network stack.
"""

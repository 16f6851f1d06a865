"""Domain operations behind the admin API, one module per resource group.

Every function is keyword-only, takes the caller's ``Session`` (a write transaction from
``kiosk.services.tx.write`` for changes) and the ``AuditLog``, raises ``kiosk.errors``
subclasses, and records each state change as an audit event in the same transaction, so a
change and its log line commit together or not at all. Nothing here knows about HTTP.
"""

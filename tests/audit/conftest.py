"""The audit tests share ``audit_forge``: the steps of a forger's attack on the database."""

from __future__ import annotations



"""Prometheus metrics of one cabinet, collected from the audit log as events are committed.

Every metric is derived from events, so nothing in the cabinet has to know about metrics:
``AuditMetrics.observe`` is an ``AuditLog`` listener. A listener runs on the appender's
thread right after its commit, so it only counts: by event type, and a denial by the rules
it cites and a lock fault by its slot, both carried by the event heard. (It used to note
those events' numbers and read their rows at the next scrape; a cabinet nobody scrapes
kept every number for ever, issue 15, item 4.)

Counters start at zero when the daemon starts (the usual Prometheus counter semantics;
``rate()`` and ``increase()`` handle the reset). Gauges (audit head, open loans) are read
from the database at scrape time, so they are always whole.

| metric | from |
|---|---|
| ``kiosk_draws_total`` | ``key.drawn`` |
| ``kiosk_returns_total`` | ``key.returned`` |
| ``kiosk_denials_total{rule}`` | ``access.denied``, one count per rule id it cites |
| ``kiosk_alarms_total{kind}`` | ``alarm.<kind>`` |
| ``kiosk_lock_bus_errors_total`` | ``alarm.bus_fault``: the lock bus stopped answering |
| ``kiosk_lock_faults_total{slot}`` | ``alarm.lock_fault``: a slot did not unlock |
| ``kiosk_audit_head_seq`` | the log's head sequence number |
| ``kiosk_open_loans`` / ``kiosk_overdue_loans`` | loans not returned / past due |
| ``kiosk_sqlite_memory_bytes`` | what SQLite's allocator holds in the daemon, its page caches above all (``kiosk.store.sqlite_memory``; on SQLite only, and absent where the library's counters are out of reach) |
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kiosk.audit import AppendedEvent
from kiosk.runtime import Runtime
from kiosk.services.alarms import alarm_kind_of
from kiosk.store.db import is_sqlite
from kiosk.store.models import Loan
from kiosk.store.sqlite_memory import sqlite_memory_used
from kiosk.store.types import utcnow

TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text exposition format: every Prometheus version reads it, and these metric
names need none of the escaping newer formats negotiate."""


class AuditMetrics(Collector):
    """Counts committed events; renders them with the scrape-time gauges."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._types: Counter[str] = Counter()
        self._denials: Counter[str] = Counter()
        self._lock_faults: Counter[int] = Counter()

    # ------------------------------------------------------------------- listening
    def attach(self) -> None:
        if self.observe not in self.runtime.audit.listeners:
            self.runtime.audit.listeners.append(self.observe)

    def detach(self) -> None:
        if self.observe in self.runtime.audit.listeners:
            self.runtime.audit.listeners.remove(self.observe)

    def observe(self, event: AppendedEvent) -> None:
        """The audit listener: cheap, thread-safe, never touches the database."""
        with self._lock:
            self._types[event.type] += 1
            if event.type == "access.denied":
                for rule in event.rules or ("none",):
                    self._denials[str(rule)] += 1
            elif event.type == "alarm.lock_fault" and event.slot is not None:
                self._lock_faults[event.slot] += 1

    # -------------------------------------------------------------------- scraping
    def collect(self) -> Iterator[Metric]:
        with self._lock:
            types = Counter(self._types)
            denials = Counter(self._denials)
            faults = Counter(self._lock_faults)
        yield _counter("kiosk_draws", "Keys drawn (key.drawn events).", types["key.drawn"])
        yield _counter("kiosk_returns", "Keys returned (key.returned events).",
                       types["key.returned"])
        yield _labelled("kiosk_denials", "Refusals at the cabinet, by rule id cited.", "rule",
                        sorted(denials.items()))
        yield _labelled("kiosk_alarms", "Alarms raised, by kind.", "kind",
                        sorted((kind, n) for t, n in types.items()
                               if (kind := alarm_kind_of(t)) is not None))
        yield _counter("kiosk_lock_bus_errors",
                       "Times the lock bus stopped answering (alarm.bus_fault).",
                       types["alarm.bus_fault"])
        yield _labelled("kiosk_lock_faults", "Slots that did not unlock, by slot.", "slot",
                        sorted(faults.items()))
        seq, _ = self.runtime.audit.head()
        yield GaugeMetricFamily("kiosk_audit_head_seq", "Sequence number of the last event.",
                                value=seq)
        now = utcnow()
        with Session(self.runtime.engine) as s:
            open_ = s.scalar(select(func.count()).select_from(Loan)
                             .where(Loan.returned_at.is_(None))) or 0
            overdue = s.scalar(select(func.count()).select_from(Loan)
                               .where(Loan.returned_at.is_(None), Loan.due_at <= now)) or 0
        yield GaugeMetricFamily("kiosk_open_loans", "Keys out of the cabinet now.", value=open_)
        yield GaugeMetricFamily("kiosk_overdue_loans", "Keys out past their due time.",
                                value=overdue)
        held = sqlite_memory_used() if is_sqlite(self.runtime.engine) else None
        if held is not None:  # on PostgreSQL the database's memory is the server's
            yield GaugeMetricFamily("kiosk_sqlite_memory_bytes",
                                    "Bytes SQLite's allocator holds in this process "
                                    "(page caches, schemas, statements).", value=held)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled(name: str, doc: str, label: str,
              items: Iterable[tuple[object, float]]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for value, count in items:
        family.add_metric([str(value)], count)
    return family


def registry_for(metrics: AuditMetrics) -> CollectorRegistry:
    """A registry of this cabinet's metrics plus the process's (memory, CPU, open files).

    A registry per app rather than prometheus_client's global one, so two apps in one
    process (the tests) never register the same names twice.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)

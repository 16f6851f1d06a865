"""Fill a hub's PostgreSQL with a fleet's history, inside the server, for the query figures.

Issue 12 asks the p95 of the console's and API's list queries on 50 million events across the
fleet. Shipping 50 million events through the ingest route would take the better part of an
hour on the project's 2-core machine and would measure the ingest again, which the bench
already does; so the history is made by PostgreSQL itself (``generate_series``), in the hub's
real tables, with the hub's real indexes and partitions in place while it goes in.

What the rows are: every cabinet's log goes on from where its ingested day ends (seq, time),
with the mix of a busy cabinet (a fifth draws, a fifth returns, refused taps, the doors
opening and closing, a few alarms),
actors, slots, key numbers and payloads of the shape the cabinet writes, and a loan record
per draw (the latest copy, as the shipper sends it; about 1 in 100 still out, a tenth of
those drawn two days before the run and so overdue, K9), an alarm
record per 200 events and a daily report record, with the typed columns and per-cabinet
counts ingest writes beside them (migration 0024). What they are
not: the hashes are MD5-made stand-ins of the right length that link each row to the one
before, not SHA-256 over the row; the query plans do not look at them, and the bench says
so in its output. The cabinets' cursors are moved to the new heads.

How it goes fast: the secondary indexes of ``hub_events`` and every index of ``hub_records``
(whose keys are random UUIDs) are dropped for the load and built again afterwards from their
own definitions, read from the catalogue first, so the tables end exactly as the migrations
made them; a sorted build is several times faster than maintaining them row by row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg

EVENTS_SQL = """
INSERT INTO hub_events (cabinet_id, seq, at, type, actors, slot, key_number, decision, rules,
                        payload, prev_hash, hash, received_at)
SELECT c.cabinet_id, s.seq, s.at,
       CASE WHEN s.r < 0.20 THEN 'key.drawn' WHEN s.r < 0.40 THEN 'key.returned'
            WHEN s.r < 0.55 THEN 'access.denied' WHEN s.r < 0.775 THEN 'door.opened'
            WHEN s.r < 0.995 THEN 'door.closed' ELSE 'alarm.raised' END,
       '["person:' || (s.seq * 7919 %% 400 + 1) || '"]',
       CASE WHEN s.r < 0.40 OR s.r >= 0.55 THEN s.seq * 31 %% 200 + 1 END,
       CASE WHEN s.r < 0.40 THEN 'U' || (s.seq * 131 %% 2900 + 201) END,
       CASE WHEN s.r < 0.40 THEN 'allow' WHEN s.r < 0.55 THEN 'deny' END,
       CASE WHEN s.r < 0.40 THEN '["K3"]' WHEN s.r < 0.55 THEN '["K1"]' ELSE '[]' END,
       CASE WHEN s.r < 0.20 THEN '{"loan":' || s.seq || ',"reason":"repair"}'
            WHEN s.r < 0.40 THEN '{"loan":' || (s.seq - 1) || '}'
            WHEN s.r < 0.55 THEN '{"card":"' || upper(substr(md5(s.seq::text), 1, 8)) || '"}'
            ELSE '{"door":1}' END,
       CASE WHEN s.seq = c.acked_seq + 1 THEN c.head_hash
            ELSE md5(c.cabinet_id || ':' || (s.seq - 1)) || md5((s.seq - 1) || ':' || c.cabinet_id)
       END,
       md5(c.cabinet_id || ':' || s.seq) || md5(s.seq || ':' || c.cabinet_id),
       s.at + interval '2 seconds'
FROM hub_cabinets c
CROSS JOIN LATERAL (
    SELECT g AS seq, random() AS r,
           timestamptz '2026-12-07 08:00:00+00' + g * interval '15 seconds' AS at
    FROM generate_series(c.acked_seq + 1, c.acked_seq + %(per)s) AS g) AS s
WHERE c.cabinet_id = ANY(%(ids)s)
"""

LOANS_SQL = """
INSERT INTO hub_records (kind, record_id, cabinet_id, body, received_at, occurred_at, due_at,
                         facet, borrower_id)
SELECT 'loan', md5(c.cabinet_id || ':loan:' || n)::uuid, c.cabinet_id,
       '{"approval_id": null, "authorization_id": null, "borrower_id": "'
         || md5('person:' || (n * 7919 %% 400))::uuid || '", "cabinet_id": "'
         || md5(c.cabinet_id)::uuid || '", "draw_event_seq": ' || (n * 5 / 2)
         || ', "drawn_at": "' || to_char(s.at, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
         || '", "due_at": "' || to_char(s.at + interval '8 hours',
                                        'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
         || '", "duty_manager_id": null, "id": "' || md5(c.cabinet_id || ':loan:' || n)::uuid
         || '", "issuer_id": null, "key_id": "' || md5('key:' || (n * 131 %% 2900))::uuid
         || '", "quantity": 1, "reason_code": "repair", "reason_text": null, '
         || CASE WHEN n > %(loans)s * 0.99 THEN
                   '"received_by_id": null, "return_event_seq": null, "return_slot_id": null, '
                   || '"returned_at": null, "returned_by_id": null, "returned_by_other": false}'
                 ELSE '"received_by_id": null, "return_event_seq": ' || (n * 5 / 2 + 3)
                   || ', "return_slot_id": null, "returned_at": "'
                   || to_char(s.at + interval '2 hours', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
                   || '", "returned_by_id": null, "returned_by_other": false}' END,
       s.at + interval '2 seconds', s.at, s.at + interval '8 hours',
       CASE WHEN n > %(loans)s * 0.99 THEN 'out' ELSE 'returned' END,
       md5('person:' || (n * 7919 %% 400))::uuid
FROM hub_cabinets c
CROSS JOIN LATERAL (
    SELECT n, CASE WHEN n > %(loans)s * 0.99 AND n %% 10 = 0
                   -- a tenth of the keys out were drawn two days ago: overdue now (K9)
                   THEN now() - interval '2 days' + (n %% 1440) * interval '1 minute'
                   ELSE timestamptz '2026-12-07 08:00:00+00' + n * interval '37.5 seconds'
              END AS at
    FROM generate_series(1, %(loans)s) AS n) AS s
WHERE c.cabinet_id = ANY(%(ids)s)
"""

ALARM_RECORDS_SQL = """
INSERT INTO hub_records (kind, record_id, cabinet_id, body, received_at, occurred_at, facet)
SELECT 'alarm', md5(c.cabinet_id || ':alarm:' || n)::uuid, c.cabinet_id,
       '{"cabinet_id": "' || md5(c.cabinet_id)::uuid || '", "closed_at": '
         || CASE WHEN n %% 20 = 1 THEN 'null' ELSE '"' || to_char(s.at + interval '1 hour',
                 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') || '"' END
         || ', "event_seq": ' || (n * 200) || ', "id": "'
         || md5(c.cabinet_id || ':alarm:' || n)::uuid || '", "key_id": "'
         || md5('key:' || (n * 131 %% 2900))::uuid || '", "kind": "key_overdue", '
         || '"message": "key overdue", "notes": [], "owner_id": null, "raised_at": "'
         || to_char(s.at, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') || '", "rule": "K9", "state": "'
         || s.state || '"}',
       s.at + interval '2 seconds', s.at, s.state
FROM hub_cabinets c
CROSS JOIN LATERAL (
    SELECT n, timestamptz '2026-12-07 08:00:00+00' + n * interval '50 minutes' AS at,
           CASE WHEN n %% 20 = 1 THEN 'open' ELSE 'closed' END AS state
    FROM generate_series(1, %(alarms)s) AS n) AS s
WHERE c.cabinet_id = ANY(%(ids)s)
"""
"""An alarm record per 200 events (``alarm.raised`` is 0.5 % of them), 1 in 20 still open."""

REPORT_RECORDS_SQL = """
INSERT INTO hub_records (kind, record_id, cabinet_id, body, received_at, occurred_at, facet)
SELECT 'report', md5(c.cabinet_id || ':report:' || n)::uuid, c.cabinet_id,
       '{"acknowledged_at": null, "acknowledged_by": null, "generated_at": "'
         || to_char(s.at, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') || '", "id": "'
         || md5(c.cabinet_id || ':report:' || n)::uuid
         || '", "kind": "daily", "language": "zh", "period_end": "'
         || to_char(s.at, 'YYYY-MM-DD') || '", "period_start": "'
         || to_char(s.at - interval '1 day', 'YYYY-MM-DD') || '", "sha256": "'
         || md5(n::text) || md5(c.cabinet_id) || '", "subject": null}',
       s.at + interval '2 seconds', s.at, 'daily'
FROM hub_cabinets c
CROSS JOIN LATERAL (
    SELECT n, timestamptz '2026-12-07 06:00:00+00' + n * interval '1 day' AS at
    FROM generate_series(1, %(reports)s) AS n) AS s
WHERE c.cabinet_id = ANY(%(ids)s)
"""
"""A daily report per cabinet and day of history (an event every 15 s: 5,760 a day)."""

COUNTS_SQL = """
DELETE FROM hub_record_counts;
INSERT INTO hub_record_counts (cabinet_id, kind, facet, n)
SELECT cabinet_id, kind, coalesce(facet, ''), count(*) FROM hub_records
GROUP BY cabinet_id, kind, coalesce(facet, '');
DELETE FROM hub_borrower_counts;
INSERT INTO hub_borrower_counts (borrower_id, facet, cabinet_id, n)
SELECT borrower_id, coalesce(facet, ''), cabinet_id, count(*) FROM hub_records
WHERE kind = 'loan' AND borrower_id IS NOT NULL
GROUP BY 1, 2, 3;
DELETE FROM hub_due_counts;
INSERT INTO hub_due_counts (cabinet_id, due_hour, n)
SELECT cabinet_id, floor(extract(epoch FROM due_at) / 3600)::bigint, count(*) FROM hub_records
WHERE kind = 'loan' AND facet = 'out' AND due_at IS NOT NULL
GROUP BY 1, 2
"""
"""The counts ingest keeps beside the records (the lists' totals; the keys out per due hour,
migration 0026; the loans per borrower, 0027), made once for the load."""

HEADS_SQL = """
UPDATE hub_cabinets
SET acked_seq = acked_seq + %(per)s,
    head_hash = md5(cabinet_id || ':' || (acked_seq + %(per)s))
                || md5((acked_seq + %(per)s) || ':' || cabinet_id)
WHERE cabinet_id = ANY(%(ids)s)
"""

ALARMS_SQL = """
INSERT INTO hub_alarms (id, cabinet_id, kind, message, seq, state, count, raised_at, last_at)
SELECT md5('alarm:' || cabinet_id)::uuid, cabinet_id, 'refused_request',
       'request time is 412 s from the hub''s clock (window 300 s)', NULL, 'open', 3,
       now() - interval '2 days', now() - interval '1 day'
FROM hub_cabinets WHERE cabinet_id = ANY(%(ids)s)
"""


BULK_TABLES = ("hub_events", "hub_records")
INDEX_DEFS_SQL = """
SELECT i.tablename, i.indexname, i.indexdef, c.conname, pg_get_constraintdef(c.oid)
FROM pg_indexes i
LEFT JOIN pg_constraint c ON c.conname = i.indexname AND c.contype = 'p'
WHERE i.schemaname = current_schema() AND i.tablename = ANY(%(tables)s)
  AND NOT (i.tablename = 'hub_events' AND c.conname IS NOT NULL)
"""
"""The indexes to drop for the load: all but the events' primary key (its rows arrive in key
order per cabinet, cheap to keep)."""


@dataclass(frozen=True)
class Loaded:
    events: int
    loan_records: int
    alarms: int
    alarm_records: int
    report_records: int
    seconds: float
    database_bytes: int


def conninfo(sqlalchemy_url: str) -> str:
    """A libpq URL from the SQLAlchemy one (``postgresql+psycopg://`` → ``postgresql://``)."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def load_history(url: str, cabinet_ids: list[str], events: int, *, workers: int = 2,
                 progress: Callable[[str], None] = print) -> Loaded:
    """About ``events`` more events spread evenly over ``cabinet_ids``, a loan record per
    draw, an alarm record per 200 events and a daily report record (with the typed columns
    and counts ingest writes, migration 0024), an open hub alarm per 5 cabinets; ``workers`` sessions load chunks of cabinets at once."""
    per = max(1, events // len(cabinet_ids))
    loans = max(1, per // 5)  # a loan record per draw
    alarms = max(1, per // 200)  # an alarm record per alarm.raised
    reports = max(1, per // 5760)  # a daily report per day of history
    chunk = max(1, min(len(cabinet_ids) // (workers * 4) or 1, 2_000_000 // per or 1))
    chunks = [cabinet_ids[i:i + chunk] for i in range(0, len(cabinet_ids), chunk)]
    done = [0]
    start = time.perf_counter()

    def one(ids: list[str]) -> None:
        with psycopg.connect(conninfo(url), autocommit=False) as conn:
            conn.execute("SET synchronous_commit = off")
            conn.execute(EVENTS_SQL, {"per": per, "ids": ids})
            conn.execute(LOANS_SQL, {"loans": loans, "ids": ids})
            conn.execute(ALARM_RECORDS_SQL, {"alarms": alarms, "ids": ids})
            conn.execute(REPORT_RECORDS_SQL, {"reports": reports, "ids": ids})
            conn.execute(HEADS_SQL, {"per": per, "ids": ids})
            conn.commit()
        done[0] += len(ids)
        elapsed = time.perf_counter() - start
        progress(f"   loaded {done[0]:,}/{len(cabinet_ids):,} cabinets, "
                 f"{done[0] * per:,} events, {elapsed:.0f} s "
                 f"({done[0] * per / elapsed:,.0f} events/s)")

    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        indexes = conn.execute(INDEX_DEFS_SQL, {"tables": list(BULK_TABLES)}).fetchall()
        for table, name, _, constraint, _ in indexes:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}" if constraint
                         else f"DROP INDEX {name}")
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(one, chunks):
            pass
    alarm_ids = cabinet_ids[::5]
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        for table, name, indexdef, constraint, condef in indexes:
            progress(f"   building {name} ({time.perf_counter() - start:.0f} s)")
            if constraint:
                conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {constraint} {condef}")
            else:  # the catalogue spells a partitioned index "ON ONLY": that would not
                conn.execute(indexdef.replace(" ON ONLY ", " ON ", 1))  # reach the partitions
        conn.execute(ALARMS_SQL, {"ids": alarm_ids})
        conn.execute(COUNTS_SQL)
        progress("   ANALYZE, and VACUUM of the records (the planner's statistics and the "
                 "visibility map, as autovacuum would keep them)")
        conn.execute("ANALYZE hub_events")
        conn.execute("VACUUM (ANALYZE) hub_records")
        conn.execute("ANALYZE hub_cabinets")
        conn.execute("ANALYZE hub_alarms")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return Loaded(per * len(cabinet_ids), loans * len(cabinet_ids), len(alarm_ids),
                  alarms * len(cabinet_ids), reports * len(cabinet_ids),
                  time.perf_counter() - start, int(size[0]) if size else 0)

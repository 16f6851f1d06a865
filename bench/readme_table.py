"""Make the README's performance table from bench/results/*.json, never by hand.

The table sits between two marker comments in README.md. Each row names the result file
and the figures it shows; a bench that has not been run says so instead of keeping an old
number. Under the table, one line per bench says which commit, dataset and machine its
figures came from, and the load on the machine while it ran, so a reader can tell a quiet
measurement from one taken beside other work.

    .venv/bin/python bench/readme_table.py          # rewrite the table in README.md
    .venv/bin/python bench/readme_table.py --check  # exit 1 if README.md is out of date
    .venv/bin/python bench/readme_table.py --print bench/results/quick  # show, write nothing
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
README = HERE.parent / "README.md"
RESULTS = HERE / "results"
START = "<!-- bench-table:start (made by bench/readme_table.py from bench/results; do not edit) -->"
END = "<!-- bench-table:end -->"


@dataclass(frozen=True)
class Row:
    bench: str
    label: str
    show: Callable[[dict[str, Any]], str]
    aim: str = ""


def ms(*keys: str) -> Callable[[dict[str, Any]], str]:
    def show(f: dict[str, Any]) -> str:
        return " / ".join(f"{f[k]:.1f}" if f[k] >= 10 else f"{f[k]:.2f}" for k in keys) + " ms"
    return show


def mb(*keys: str) -> Callable[[dict[str, Any]], str]:
    return lambda f: " / ".join(f"{f[k]:.1f}" for k in keys) + " MB"


def side_by_side(stem: str) -> Callable[[dict[str, Any]], str]:
    """``big_<stem>_p50/p99`` and ``demo_<stem>_p50/p99`` as "big p50/p99 · demo p50/p99"."""
    def show(f: dict[str, Any]) -> str:
        def pair(side: str) -> str:
            return "/".join(f"{f[f'{side}_{stem}_{p}']:.1f}" for p in ("p50", "p99"))
        return f"{pair('big')} · {pair('demo')} ms"
    return show


def import_costs(records: dict[str, dict[str, Any]]) -> list[str]:
    """What each large import costs, alone in a fresh interpreter (bench/bench_memory.py)."""
    record = records.get("memory")
    if record is None:
        return []
    lines = ["", "| import (alone, with its own dependencies) | RSS | import time "
             "| the daemon loads it |", "|---|---|---|---|"]
    for module, cost in record["figures"].get("imports", {}).items():
        if "rss_mb" in cost:
            lines.append(f"| `{module}`: {cost['what']} | {cost['rss_mb']:.1f} MB | "
                         f"{cost['import_ms']:.0f} ms | {cost.get('daemon_loads', '')} |")
    return lines


ROWS = [
    Row("tap_release", "badge tap → the screen lists the drawable keys, p50 / p99",
        ms("tap_to_screen_ms_p50", "tap_to_screen_ms_p99"), "p50 ≤ 5 ms, p99 ≤ 10 ms"),
    Row("tap_release", "choice with no pick first (chosen the moment the list is made, as over "
        "the kiosk API without `/pick`: the 0x37 goes with the unlock) → last byte of the "
        "unlock written to the RS-485 bus (policy + durable intent + driver), p50 / p99",
        ms("choice_to_unlock_byte_ms_p50", "choice_to_unlock_byte_ms_p99")),
    Row("tap_release", "tap + choice → unlock byte, p50 / p99 / max",
        ms("tap_plus_choice_to_unlock_byte_ms_p50", "tap_plus_choice_to_unlock_byte_ms_p99",
           "tap_plus_choice_to_unlock_byte_ms_max")),
    Row("tap_release", "every frame the driver sends for one unlock, on the wire at 19200 baud",
        lambda f: f"{f['unlock_wire_ms_at_19200']:.2f} ms ({f['unlock_frames_sent']}, "
                  f"{f['unlock_wire_bytes']} bytes)"),
    Row("tap_release", "key's fob on the MFRC522 antenna → unlock byte, p50 / p99",
        ms("antenna_to_unlock_byte_ms_p50", "antenna_to_unlock_byte_ms_p99"), "p99 ≤ 30 ms"),
    Row("tap_release", "the tap bench's own process RSS before / after its taps",
        mb("bench_process_rss_mb_before", "bench_process_rss_mb_after")),
    Row("tap_scale", "at scale, big dataset / demo tower: badge tap → the drawable-key list "
        "(every key of the cabinet weighed), p50 / p99",
        side_by_side("tap_to_list_ms"), "p50 ≤ 5 ms, p99 ≤ 10 ms"),
    Row("tap_scale", "at scale, big / demo: choice (the reason touched; the key was picked "
        "on the list before, which armed its board) → first byte on the bus, p50 / p99",
        side_by_side("choice_to_first_request_byte_ms")),
    Row("tap_scale", "at scale, big / demo: choice → last byte of the 0x31 unlock handed to "
        "the OS (durable intent first), p50 / p99",
        side_by_side("choice_to_unlock_byte_ms"), "p99 ≤ 3 ms"),
    Row("tap_scale", "at scale, big / demo: the same with no pick first (the 0x37 goes "
        "after the intent, before the 0x31), p50 / p99",
        side_by_side("choice_to_unlock_byte_unpicked_ms")),
    Row("tap_scale", "at scale, big / demo: choice → that byte on a 19200-baud line (the "
        "simulated bus is a socket; the line is modelled), p50 / p99",
        side_by_side("choice_to_unlock_byte_on_wire_ms")),
    Row("tap_scale", "at scale: every frame the driver sends for one unlock, back to back on "
        "the wire at 19200 baud",
        lambda f: f"{f['big_unlock_wire_ms_at_19200']:.2f} ms ({f['big_unlock_frames_sent']}, "
                  f"{f['big_unlock_wire_bytes']} bytes; with no pick "
                  f"{f.get('big_unlock_frames_sent_unpicked', 'not measured')})"),
    Row("tap_scale", "at scale: this disk's flush (`fdatasync` of one small write), the floor "
        "under any durable intent, p50 / p99: back to back, and after the 10 ms pause a "
        "choice follows (as the intent meets it)",
        lambda f: f"{f['big_disk_flush_ms_p50']:.2f} / {f['big_disk_flush_ms_p99']:.2f} ms; "
                  + (f"{f['big_disk_flush_after_pause_ms_p50']:.2f} / "
                     f"{f['big_disk_flush_after_pause_ms_p99']:.2f} ms after a pause"
                     if "big_disk_flush_after_pause_ms_p50" in f else "after a pause not measured")),
    Row("tap_scale", "at scale, big / demo: after a draw or a return, the next badge's re-read "
        "of that key, p50 / p99", side_by_side("facts_after_a_draw_ms")),
    Row("tap_scale", "at scale, big / demo: key's fob on the MFRC522 antenna → unlock byte, "
        "p50 / p99", side_by_side("antenna_to_unlock_byte_ms"), "p99 ≤ 30 ms"),
    Row("memory", "daemon RSS once idle (`kiosk run`, simulated tower, both listeners)",
        lambda f: f"{f['daemon_rss_idle_mb']:.1f} MB", "≤ 85 MB"),
    Row("memory", "daemon RSS after the admin API's first request (it is made by it)",
        lambda f: (f"{f['daemon_rss_after_admin_request_mb']:.1f} MB"
                   if "daemon_rss_after_admin_request_mb" in f else "not measured")),
    Row("memory", "daemon RSS growth over draw-and-return cycles through its kiosk HTTP API "
        "and the simulated sensors, after the warm-up cycles",
        lambda f: f"{f['rss_growth_mb']:+.2f} MB over {f['draws_and_returns']:,} after "
                  f"{f.get('warm_up_cycles', 200):,} "
                  f"({f['rss_mb_after_warm_up']:.1f} → {f['rss_mb_after_draws']:.1f} MB"
                  + (f"; SQLite's own heap {f['sqlite_growth_mb']:+.2f} MB of it)"
                     if f.get("sqlite_growth_mb") is not None else ")"),
        "≤ 2 MB after 10,000"),
    Row("audit", "durable audit append (`synchronous=FULL`), p50 / p99",
        ms("append_ms_p50", "append_ms_p99")),
    Row("verify", "`kiosk audit verify` of the whole log",
        lambda f: f"{f['verify_s']:.1f} s ({f['events']:,} events, "
                  f"{f['verify_events_per_s']:,.0f} events/s)", "≤ 10 s for 1,000,000"),
    Row("verify_postgres", "`kiosk audit verify` of the whole log on PostgreSQL",
        lambda f: f"{f['verify_s']:.1f} s ({f['events']:,} events, "
                  f"{f['verify_events_per_s']:,.0f} events/s)", "≤ 10 s for 1,000,000"),
    Row("daemon", "daemon cold start to locks controllable",
        lambda f: f"{f['cold_start_to_locks_controllable_s']:.2f} s", "≤ 2 s"),
    Row("daemon", "daemon RSS idle / after its draws and returns from cold (the first "
        "draws fill caches: growth after the warm-up is the row on 10,000 cycles above)",
        lambda f: f"{f['rss_idle_mb']:.1f} / {f['rss_after_draws_mb']:.1f} MB "
                  f"({f['draws_and_returns']:,} draws)", "idle ≤ 85 MB"),
    Row("daemon", "one draw + return through the daemon's HTTP surface, p50 / p99",
        lambda f: f"{f['draw_return_cycle_s_p50']:.2f} / {f['draw_return_cycle_s_p99']:.2f} s"),
    Row("admin_api", "admin API p50 / p95: open loans, overdue, latest events, events by "
        "type, a people page",
        lambda f: ", ".join(f"{f[q + '_ms_p50']:.1f}/{f[q + '_ms_p95']:.1f}" for q in (
            "open_loans", "overdue_loans", "events_latest_page", "events_by_type",
            "people_page")) + " ms", "p95 ≤ 20 ms"),
    Row("admin_api", "admin API open-loans query, 8 concurrent clients",
        lambda f: f"{f['open_loans_rps_8_clients']:.0f} requests/s"),
    Row("fleet_revocation", "card revoked at the hub → refused at each online cabinet "
        "(2 cabinets), p50 / p95 / max",
        lambda f: " / ".join(f"{f[k]:.2f}" for k in (
            "revoke_to_in_force_s_p50", "revoke_to_in_force_s_p95",
            "revoke_to_in_force_s_max")) + " s", "≤ 5 s"),
    Row("fleet_scale", "fleet: events/s ingested by the hub from 1,000 simulated cabinets, every "
        "SHA-256, link and signed checkpoint verified",
        lambda f: f"{f['ingest_events_per_s']:,} events/s ({f['events']:,} events, "
                  f"{f['loan_records_shipped']:,} loan records)", "≥ 20,000 events/s"),
    Row("fleet_scale", "fleet: card revoked at the hub → a cabinet's long-poll answers it, "
        "during that ingest, p50 / max",
        lambda f: f"{f['revoke_to_long_poll_s_p50']:.2f} / {f['revoke_to_long_poll_s_max']:.2f} s",
        "≤ 5 s"),
    Row("fleet_scale", "fleet list queries through the hub's API, p50/p95: a cabinet's events, "
        "by type, by a rare type, a deep page, a cabinets page, a site's loans, the alarms",
        lambda f: f"on {f['query_dataset_events'] / 1e6:.1f} M events: " + ", ".join(
            f"{f[f'list_{q}_p50_ms']:.0f}/{f[f'list_{q}_p95_ms']:.0f}" for q in (
                "events_of_a_cabinet", "events_by_type", "events_by_rare_type",
                "events_deep_page", "cabinets_page", "loans_of_a_site", "alarms")) + " ms",
        "p95 ≤ 50 ms"),
    Row("fleet_scale", "fleet lists by site, first page with its total, p95: the whole fleet's "
        "loans (all, out, overdue, returned, a deep page), a site's and a cabinet's loans, the "
        "cabinets' alarms (fleet, open, a site's), the reports (fleet, a site's)",
        lambda f: f"on {f['query_dataset_events'] / 1e6:.1f} M events: " + ", ".join(
            f"{f[f'list_{q}_p95_ms']:.0f}" for q in (
                "fleet_loans_all", "fleet_loans_out", "fleet_loans_overdue",
                "fleet_loans_returned", "fleet_loans_deep_page", "site_loans_all",
                "cabinet_loans_all", "fleet_cabinet_alarms", "fleet_open_cabinet_alarms",
                "site_cabinet_alarms", "fleet_reports", "site_reports")) + " ms",
        "p95 ≤ 50 ms"),
    Row("fleet_scale", "fleet merged log, first page, p50/p95: the fleet's, a site's, the "
        "fleet's of a rare type (alarm.raised), of a common type (key.drawn), a site's of a "
        "rare type",
        lambda f: f"on {f['query_dataset_events'] / 1e6:.1f} M events: " + ", ".join(
            f"{f[f'list_{q}_p50_ms']:.0f}/{f[f'list_{q}_p95_ms']:.0f}" for q in (
                "site_log_fleet", "site_log_of_a_site", "site_log_rare_type",
                "site_log_common_type", "site_log_rare_type_of_a_site")) + " ms",
        "p95 ≤ 50 ms"),
]


def load(results: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(results.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if "figures" in record:  # files older than provenance cannot be attributed
            found[record["bench"]] = record
    return found


SCRIPT_OF = {"admin_api": "api", "tap_release": "tap", "fleet_revocation": "fleet"}
"""Result names that differ from their script's (bench_<script>.py), for the hint to run it."""


def cell(row: Row, records: dict[str, dict[str, Any]]) -> str:
    record = records.get(row.bench)
    if record is None:
        return f"not measured (run `BENCH_ONLY={SCRIPT_OF.get(row.bench, row.bench)} make bench`)"
    try:
        return row.show(record["figures"])
    except KeyError as missing:
        return f"not in {row.bench}.json ({missing})"


def table(records: dict[str, dict[str, Any]]) -> str:
    lines = ["| figure | measured | aim |", "|---|---|---|"]
    lines += [f"| {r.label} | {cell(r, records)} | {r.aim} |" for r in ROWS]
    lines += import_costs(records)
    lines.append("")
    for name in sorted({r.bench for r in ROWS}):
        record = records.get(name)
        if record is None:
            continue
        data = record["dataset"]
        sizes = ", ".join(f"{v:,} {k}" for k, v in data.items()
                          if k != "name" and isinstance(v, int))
        lines.append(f"- `{name}`: commit {record['commit']}, {data.get('name')} ({sizes}); "
                     f"{record['machine']}; {record['measured_at']}, load average "
                     f"{' '.join(str(x) for x in record['load_average'])}")
    return "\n".join(lines)


def rewrite(readme: str, body: str) -> str:
    head, sep, rest = readme.partition(START)
    if not sep or END not in rest:
        raise SystemExit(f"README.md has no {START!r} … {END!r} markers")
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{body}\n{END}{tail}"


def main(argv: list[str]) -> int:
    if "--print" in argv:
        folder = Path(argv[argv.index("--print") + 1]) if len(argv) > 1 else RESULTS
        print(table(load(folder)))
        return 0
    text = README.read_text(encoding="utf-8")
    new = rewrite(text, table(load(RESULTS)))
    if "--check" in argv:
        if new != text:
            print("README.md's performance table is out of date: python bench/readme_table.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    print("README.md: performance table made from bench/results/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

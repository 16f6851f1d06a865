"""`make mutation` / `make mutation-ci`: list mutmut's survivors and fail on unexplained ones.

Reads ``mutmut results`` (run from the repository root after ``mutmut run``). A surviving
mutant is either killed by a new test or explained as equivalent in docs/testing.md,
where its name appears in backticks; any other survivor (or one that timed out, or that
no test reached) makes this exit 1, naming it. Not a test module: pytest does not collect it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "testing.md"
BAD = ("survived", "timeout", "no tests", "suspicious", "segfault")


def results() -> dict[str, str]:
    out = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    status: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            status[name] = state
    return status


def unexplained(status: dict[str, str], explained: set[str]) -> list[str]:
    """The lines that fail the run: each survivor not explained, and a run that checked
    nothing or left mutants unchecked (mutmut stopped early: its clean run failed, say)."""
    if not status:
        return ["no mutants at all: did `mutmut run` run on these modules?"]
    problems = [f"  {status[n]}: {n}  (kill it with a test or explain it in docs/testing.md)"
                for n in sorted(status) if status[n] in BAD and n not in explained]
    unchecked = sum(1 for s in status.values() if s == "not checked")
    if unchecked:
        problems.append(f"  {unchecked} mutants not checked: the mutation run did not finish "
                        "(see mutmut's output above)")
    return problems


def module_of(name: str) -> str:
    """``kiosk.audit.verify.x_verify_log__mutmut_3`` -> ``kiosk.audit.verify``."""
    return name.split(".x", 1)[0] if ".x" in name else name.rsplit(".", 1)[0]


def by_module(status: dict[str, str], explained: set[str]) -> list[str]:
    """One line per mutated module: its mutants, killed, survived and how many of those
    survivors are explained, so a run shows which modules it covered."""
    modules: dict[str, dict[str, int]] = {}
    for name, state in status.items():
        counts = modules.setdefault(module_of(name), {"mutants": 0, "killed": 0, "survived": 0,
                                                     "explained": 0})
        counts["mutants"] += 1
        if state == "killed":
            counts["killed"] += 1
        elif state in BAD:
            counts["survived"] += 1
            counts["explained"] += name in explained
    return [f"  {module}: {c['mutants']} mutants, {c['killed']} killed, {c['survived']} survived "
            f"or timed out ({c['explained']} explained)" for module, c in sorted(modules.items())]


def main(prefixes: list[str]) -> int:
    status = {n: s for n, s in results().items()
              if not prefixes or any(n.startswith(p) for p in prefixes)}
    explained = set(re.findall(r"`([\w.ǁ]+__mutmut_\d+)`", DOCS.read_text(encoding="utf-8")))
    counts: dict[str, int] = {}
    for state in status.values():
        counts[state] = counts.get(state, 0) + 1
    print("mutants: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for line in by_module(status, explained):
        print(line)
    known = sorted(n for n, s in status.items() if s in BAD and n in explained)
    if known:
        print(f"{len(known)} survivor(s) explained as equivalent in docs/testing.md")
    problems = unexplained(status, explained)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

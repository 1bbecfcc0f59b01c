"""The kill rate of `make mutation`, one line per package, from mutmut's results.

    mutation: edgenode/control killed K of N non-equivalent (P %)

Killed: the tests failed (or timed out, or the mutant crashed the run). Survived: they passed,
or no test reached the code. Mutants listed in tests/mutation/equivalent.toml (name = why it
behaves as the original, and the line it changes) are not counted, once `mutmut show` confirms
the entry still names that change; mutants not run yet are counted apart.
Exit 1 when a package is under its target (90 %) or has no mutant checked.

    report.py --sample mutants/sample.txt

counts only the mutants named in that file (sample.py's seeded sample) and prints, per
package, how many of how many it drew and the 95 % (Wilson) interval of the kill rate.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("edgenode.control", "edgenode.link")
TARGET_PCT = 90.0
KILLED = {"killed", "timeout", "segfault", "caught by type check", "suspicious"}
NOT_RUN = {"not checked", "skipped"}


def results() -> dict[str, str]:
    """mutant name -> status, as `mutmut results --all true` lists them."""
    out = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "results", "--all",
                          "true"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name.startswith("edgenode."):
            found[name] = status
    return found


def changed_line(name: str) -> str | None:
    """The line the mutant puts in place of the original's (`mutmut show`), stripped."""
    out = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "show", name], cwd=ROOT,
                         capture_output=True, text=True).stdout
    added = [line[1:].strip() for line in out.splitlines()
             if line.startswith("+") and not line.startswith("+++")]
    return added[0] if len(added) == 1 else None


def still_equivalent(entries: dict[str, dict[str, str]], names: set[str]) -> set[str]:
    """The listed mutants among names that still make the change the entry was written for;
    the others are named as stale (numbers shift when code above them changes)."""
    kept = set()
    for name in sorted(names & entries.keys()):
        now = changed_line(name)
        if now == entries[name]["mutated"]:
            kept.add(name)
        else:
            print(f"  stale equivalent entry: {name} now changes a line into {now!r}, "
                  f"not {entries[name]['mutated']!r}")
    return kept


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % interval (per cent) of a proportion k/n."""
    if n == 0:
        return 0.0, 100.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100.0 * (centre - half), 100.0 * (centre + half)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=Path, help="count only the mutants named in this file")
    args = ap.parse_args()
    equivalent_file = Path(__file__).with_name("equivalent.toml")
    entries = tomllib.loads(equivalent_file.read_text()) if equivalent_file.exists() else {}
    statuses = results()
    drawn = set(args.sample.read_text().split()) if args.sample else None
    equivalent = still_equivalent(entries, set(statuses) if drawn is None else drawn)
    failing = 0
    summary = []
    for package in PACKAGES:
        everything = {n: s for n, s in statuses.items() if n.startswith(package + ".")}
        mine = {n: s for n, s in everything.items() if drawn is None or n in drawn}
        counts = Counter(s for n, s in mine.items() if n not in equivalent)
        not_run = sum(counts[s] for s in NOT_RUN)
        checked = sum(counts.values()) - not_run
        killed = sum(counts[s] for s in KILLED)
        pct = 100.0 * killed / checked if checked else 0.0
        survivors = sorted(n for n, s in mine.items()
                           if n not in equivalent and s not in KILLED | NOT_RUN)
        for name in survivors:
            print(f"  survived: {name} ({mine[name]})")
        extra = f"; {not_run} not run" if not_run else ""
        eq = sum(1 for n in mine if n in equivalent)
        if drawn is not None:
            low, high = wilson(killed, checked)
            print(f"mutation: {package.replace('.', '/')} sample of {len(mine)} of "
                  f"{len(everything)} mutants; 95 % interval {low:.1f}-{high:.1f} %")
        summary.append(f"mutation: {package.replace('.', '/')} killed {killed} of {checked} "
                       f"non-equivalent ({pct:.1f} %){extra}; {eq} equivalent listed")
        failing += checked == 0 or pct < TARGET_PCT
    print("\n".join(summary))  # last: one line per package
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())

"""The kill rate of `make mutation`, one line per package, from mutmut's results.

    mutation: edgenode/control killed K of N non-equivalent (P %)

Killed: the tests failed (or timed out, or the mutant crashed the run). Survived: they passed,
or no test reached the code. Mutants listed in tests/mutation/equivalent.toml (name = why it
behaves as the original) are not counted; mutants not run yet are counted apart.
Exit 1 when a package is under its target (90 %) or has no mutant checked.
"""

from __future__ import annotations

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


def main() -> int:
    equivalent_file = Path(__file__).with_name("equivalent.toml")
    equivalent = tomllib.loads(equivalent_file.read_text()) if equivalent_file.exists() else {}
    statuses = results()
    failing = 0
    summary = []
    for package in PACKAGES:
        mine = {n: s for n, s in statuses.items() if n.startswith(package + ".")}
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
        summary.append(f"mutation: {package.replace('.', '/')} killed {killed} of {checked} "
                       f"non-equivalent ({pct:.1f} %){extra}; {eq} equivalent listed")
        failing += checked == 0 or pct < TARGET_PCT
    print("\n".join(summary))  # last: one line per package
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())

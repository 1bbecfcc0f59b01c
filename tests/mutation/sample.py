"""A seeded random sample of the generated mutants, per package, for `make mutation`.

All of control/ and link/ is some 7,000 mutants: about 15 hours on a 2-core machine. A
uniform random sample of 100 per package estimates the kill rate to about +-6 per cent
(report.py prints the interval) in about 1.5 hours. The seed makes the sample the same on every
machine; a new seed is a fresh, unbiased sample after survivors of the last one were fixed.

    python tests/mutation/sample.py --per-package 100 --seed 1 > mutants/sample.txt

Prints the chosen names, one per line, from what `mutmut results --all true` lists (run mutmut
once first, so that the mutants exist). --per-package 0: every mutant.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.mutation.report import PACKAGES, results


def sample(names: list[str], per_package: int, seed: int) -> list[str]:
    chosen: list[str] = []
    for package in PACKAGES:
        mine = sorted(n for n in names if n.startswith(package + "."))
        if 0 < per_package < len(mine):
            mine = sorted(random.Random(f"{seed}:{package}").sample(mine, per_package))
        chosen += mine
    return chosen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-package", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    names = list(results())
    if not names:
        print("mutation sample: no mutants listed; run mutmut first", file=sys.stderr)
        return 1
    print("\n".join(sample(names, args.per_package, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A bench's targets: each figure is checked against its target as it is printed, and the
bench exits non-zero naming every target it missed (so `make bench` fails on a miss)."""

from __future__ import annotations

import sys


class Targets:
    def __init__(self, bench: str):
        self.bench = bench
        self.missed: list[str] = []

    def at_most(self, what: str, value: float, target: float, unit: str) -> str:
        """'ok' when `value` <= `target`, else 'MISSED' (remembered for `exit_code`)."""
        return self._check(what, value <= target, f"{value:.4g} {unit} > {target:g} {unit}")

    def at_least(self, what: str, value: float, target: float, unit: str) -> str:
        return self._check(what, value >= target, f"{value:.4g} {unit} < {target:g} {unit}")

    def _check(self, what: str, met: bool, why: str) -> str:
        if met:
            return "ok"
        self.missed.append(f"{what}: {why}")
        return "MISSED"

    def exit_code(self) -> int:
        """1 after naming each missed target on stderr, 0 when all were met."""
        for miss in self.missed:
            print(f"{self.bench}: target missed: {miss}", file=sys.stderr)
        return 1 if self.missed else 0

"""Renumber equivalent.toml's entries after the code moved: mutant numbers shift when code
above them in a function changes. An entry whose mutant no longer makes its `mutated` line is
given the number of the mutant in the same function (or, with --also, in a function it moved
to) that does; one that none makes is reported and left for a person to judge.

    python tests/mutation/renumber.py [--also old_function=new_function ...] [--write]

Run it where mutmut has generated the mutants (after a `make mutation` or any mutmut run).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.mutation.report import changed_line, results

EQUIVALENT = Path(__file__).with_name("equivalent.toml")


def function_of(name: str) -> str:
    return name.rsplit("__mutmut_", 1)[0]


def renumbered(entries: dict[str, dict[str, str]], names: list[str],
               moved: dict[str, str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    out: dict[str, dict[str, str]] = {}
    lost = []
    for name, entry in entries.items():
        if changed_line(name) == entry["mutated"]:
            out[name] = entry
            continue
        homes = {function_of(name)}
        homes |= {new for old, new in moved.items() if function_of(name).endswith(old)}
        found = next((n for n in names if function_of(n) in homes and n not in out
                      and n not in entries and changed_line(n) == entry["mutated"]), None)
        if found is None:
            lost.append(name)
            continue
        print(f"renumber: {name} -> {found}")
        out[found] = entry
    return out, lost


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--also", nargs="*", default=[], metavar="OLD=NEW",
                    help="a function's code moved to another (name suffixes, e.g. "
                         "Effectorǁ_enter_fault=Effectorǁ_close_duty)")
    ap.add_argument("--write", action="store_true", help="rewrite equivalent.toml")
    args = ap.parse_args()
    entries = tomllib.loads(EQUIVALENT.read_text())
    names = sorted(results())
    moved = dict(pair.split("=", 1) for pair in args.also)
    moved = {old: next((function_of(n) for n in names if function_of(n).endswith(new)), new)
             for old, new in moved.items()}
    out, lost = renumbered(entries, names, moved)
    for name in lost:
        print(f"renumber: no mutant makes {name}'s line any more: "
              f"{entries[name]['mutated']!r}")
    if args.write:
        head = [line for line in EQUIVALENT.read_text().splitlines() if line.startswith("#")]
        body = [f"{json.dumps(n, ensure_ascii=False)} = {{why = "
                f"{json.dumps(e['why'], ensure_ascii=False)}, mutated = "
                f"{json.dumps(e['mutated'], ensure_ascii=False)}}}" for n, e in out.items()]
        EQUIVALENT.write_text("\n".join(head + body) + "\n")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())

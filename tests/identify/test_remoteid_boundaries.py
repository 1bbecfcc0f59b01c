"""The Remote ID rooms keep their boundaries: the decoder, store and verdicts are pure (no
I/O, no hal), and hal.remoteid imports nothing of edgenode (tests/test_architecture.py checks
all of hal too; this names the new rooms)."""

from __future__ import annotations

from pathlib import Path

from tests.importgraph import imports

ROOT = Path(__file__).resolve().parents[2]
IO = ("hal", "paho", "socket", "serial", "sqlite3", "subprocess", "threading", "os", "pathlib",
      "logging")


def test_remoteid_identification_is_pure() -> None:
    found = [f"{i.module}:{i.line} imports {i.name}" for i in imports(ROOT, ("edgenode",))
             if i.module.startswith("edgenode.identify.remoteid")
             and any(i.name == f or i.name.startswith(f + ".") for f in IO)]
    assert not found, found


def test_remoteid_receivers_know_nothing_of_edgenode() -> None:
    found = [f"{i.module}:{i.line} imports {i.name}" for i in imports(ROOT, ("hal",))
             if i.module.startswith("hal.remoteid") and i.name.startswith("edgenode")]
    assert not found, found

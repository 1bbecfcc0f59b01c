"""Safety code checks with real checks: `python -O` strips every `assert` (issue 21)."""

from __future__ import annotations

import ast

from tests.conftest import ROOT


def test_safety_paths_use_no_assert_for_runtime_checks() -> None:
    """The effector and its config, the daemon that wires them, and the SAPIENT room (its
    effector tasks reach the relay)."""
    found = []
    for package in ("edgenode/control", "edgenode/config", "edgenode/daemon",
                    "edgenode/interop/sapient"):
        for path in sorted((ROOT / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Assert):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], f"assert used as a runtime check: {found}"

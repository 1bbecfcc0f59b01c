"""`systemd-analyze verify` on units whose paths are moved under a test root."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ANALYZE = shutil.which("systemd-analyze")


def rewrite(unit_text: str, root: Path, edgenode_bin: Path) -> str:
    """The unit as it would be on a node whose / is `root`, running `edgenode_bin`."""
    return (unit_text.replace("/opt/edgenode/current/venv/bin/edgenode", str(edgenode_bin))
            .replace("/etc/edgenode", str(root / "etc/edgenode"))
            .replace("/boot/firmware", str(root / "boot/firmware"))
            .replace("file:///opt/edgenode", f"file://{root}/opt/edgenode"))


def verify(units: list[Path], root: Path, edgenode_bin: Path) -> subprocess.CompletedProcess:
    out = root / "verify"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for unit in units:
        path = out / unit.name
        path.write_text(rewrite(unit.read_text(), root, edgenode_bin))
        paths.append(str(path))
    # verify prints a warning (exit 0) for a bad value: any output at all is a failure.
    return subprocess.run([ANALYZE, "verify", *paths], capture_output=True, text=True,
                          timeout=60, cwd=out)

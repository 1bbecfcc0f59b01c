"""edgenode-rollback swaps `current` and `previous`, and refuses what it cannot do."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.install.helpers import ROOT

ROLLBACK = ROOT / "systemd/edgenode-rollback"


def releases(root: Path, *versions: str, current: str, previous: str | None) -> Path:
    opt = root / "opt/edgenode"
    for version in versions:
        (opt / "releases" / version).mkdir(parents=True)
        (opt / "releases" / version / ".complete").touch()
    (opt / "current").symlink_to(f"releases/{current}")
    if previous:
        (opt / "previous").symlink_to(f"releases/{previous}")
    return opt


def rollback(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROLLBACK), "--root", str(root)], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_rollback_returns_to_the_previous_release_and_back(tmp_path):
    opt = releases(tmp_path, "1.0", "1.1", current="1.1", previous="1.0")
    result = rollback(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "current -> releases/1.0 (previous: releases/1.1)" in result.stdout
    assert "test root: restart skipped" in result.stdout
    assert (os.readlink(opt / "current"), os.readlink(opt / "previous")) == \
        ("releases/1.0", "releases/1.1")
    assert rollback(tmp_path).returncode == 0
    assert os.readlink(opt / "current") == "releases/1.1"
    assert not (opt / "current.new").exists()


def test_rollback_without_a_previous_release_is_refused(tmp_path):
    opt = releases(tmp_path, "1.0", current="1.0", previous=None)
    result = rollback(tmp_path)
    assert result.returncode == 1 and "no previous release to return to" in result.stderr
    assert os.readlink(opt / "current") == "releases/1.0"


@pytest.mark.parametrize("damage", ["removed", "incomplete"])
def test_rollback_to_a_missing_or_half_made_release_is_refused(tmp_path, damage):
    opt = releases(tmp_path, "1.0", "1.1", current="1.1", previous="1.0")
    if damage == "removed":
        (opt / "releases/1.0/.complete").unlink()
        (opt / "releases/1.0").rmdir()
    else:
        (opt / "releases/1.0/.complete").unlink()
    result = rollback(tmp_path)
    assert result.returncode == 1 and "gone or incomplete: not switching" in result.stderr
    assert os.readlink(opt / "current") == "releases/1.1"


def test_rollback_when_nothing_is_installed(tmp_path):
    result = rollback(tmp_path)
    assert result.returncode == 1 and "edgenode is not installed" in result.stderr

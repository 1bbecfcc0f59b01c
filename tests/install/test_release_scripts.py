"""edgenode-rollback swaps `current` and `previous` and refuses what it cannot do; uninstall.sh
keeps config and state unless purged. On a small release tree (the real install is in
test_bundle_install.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.install.helpers import ROOT

ROLLBACK = ROOT / "systemd/edgenode-rollback"
UNINSTALL = ROOT / "systemd/uninstall.sh"


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


def node_tree(root: Path) -> None:
    releases(root, "1.0", current="1.0", previous=None)
    for rel in ("etc/systemd/system/edgenode.service",
                "etc/systemd/system/edgenode-firstboot.service",
                "etc/udev/rules.d/99-edgenode.rules", "etc/systemd/timesyncd.conf.d/edgenode.conf",
                "usr/local/bin/edgenode-rollback", "etc/edgenode/edgenode.toml",
                "etc/edgenode/node.key", "var/lib/edgenode/outbox.sqlite", "etc/other.conf"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / "usr/local/bin/edgenode").symlink_to("/opt/edgenode/current/venv/bin/edgenode")


def uninstall(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", str(UNINSTALL), "--root", str(root), *args],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return result


def test_uninstall_keeps_config_and_state(tmp_path):
    node_tree(tmp_path)
    out = uninstall(tmp_path).stdout
    assert "test root, not run: systemctl disable --now edgenode-firstboot.service" in out
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if p.is_file() or p.is_symlink())
    assert left == ["etc/edgenode/edgenode.toml", "etc/edgenode/node.key", "etc/other.conf",
                    "var/lib/edgenode/outbox.sqlite"]


def test_uninstall_purge_removes_config_and_state_too(tmp_path):
    node_tree(tmp_path)
    uninstall(tmp_path, "--purge")
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if p.is_file() or p.is_symlink())
    assert left == ["etc/other.conf"]


@pytest.mark.parametrize(("purge", "expected"), [("", False), ("PURGE=0", False),
                                                 ("PURGE=1", True)])
def test_make_uninstall_purges_only_when_asked(purge, expected):
    args = ["make", "-n", "uninstall", *([purge] if purge else [])]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "systemd/uninstall.sh" in out and ("--purge" in out) == expected


def test_make_rollback_runs_edgenode_rollback():
    out = subprocess.run(["make", "-n", "rollback"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "systemd/edgenode-rollback" in out

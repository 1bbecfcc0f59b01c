"""The units are valid systemd units, and the scripts are valid bash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.install.helpers import ROOT
from tests.install.units import ANALYZE, verify

UNITS = sorted((ROOT / "systemd").glob("*.service"))
EDGENODE = Path(sys.executable).with_name("edgenode")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")


def test_the_units_shipped_are_the_daemon_and_first_boot():
    assert [u.name for u in UNITS] == ["edgenode-firstboot.service", "edgenode.service"]


@needs_analyze
def test_systemd_analyze_verify_passes_on_every_unit(tmp_path):
    result = verify(UNITS, tmp_path, EDGENODE)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), \
        result.stdout + result.stderr


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt value is reported."""
    broken = tmp_path / "src" / "edgenode.service"
    broken.parent.mkdir()
    broken.write_text((ROOT / "systemd/edgenode.service").read_text()
                      .replace("Type=notify", "Type=notifyy"))
    result = verify([broken], tmp_path, EDGENODE)
    assert "notifyy" in result.stdout + result.stderr


def test_the_daemon_waits_for_provisioning_and_first_boot():
    unit = (ROOT / "systemd/edgenode.service").read_text()
    assert "ConditionPathExists=/etc/edgenode/edgenode.toml" in unit
    assert "edgenode-firstboot.service" in unit.split("[Service]")[0]
    assert "ExecStart=/opt/edgenode/current/venv/bin/edgenode run" in unit
    first = (ROOT / "systemd/edgenode-firstboot.service").read_text()
    assert "Type=oneshot" in first and "Before=edgenode.service" in first
    assert "provision --from-file /boot/firmware/edgenode-provision.toml --remove-after" in first


@pytest.mark.parametrize("script", ["install.sh", "uninstall.sh", "edgenode-rollback"])
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", str(ROOT / "systemd" / script)], check=True)

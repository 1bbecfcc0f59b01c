"""An offline install from a bundle built here, into a temporary root.

The bundle is built once for this machine (x86_64, this Python) from the package index, then
installed with no index reachable. Under a test root install.sh creates no user (it is given
this test's own account with --user) and runs no systemctl / udevadm (it prints them); the
restart-and-READY step is simulated by EDGENODE_READY_CMD.
"""

from __future__ import annotations

import getpass
import grp
import os
import platform
import pwd
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgenode.cli.main import main
from tests.install.helpers import (
    ROOT,
    ControlRoomCA,
    load_installed_config,
    operator_key,
    tree_hash,
)
from tests.install.units import ANALYZE, verify

# Building the bundle and a venv takes a minute or two on a busy 2-core machine.
# Building a bundle (the package index) and a venv from it takes minutes: make test-long.
pytestmark = [pytest.mark.timeout(900), pytest.mark.long]
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
ARCH = platform.machine()
VERSION = "0.1.0"      # test builds set their own version: the checkout's does not matter
USER = getpass.getuser()
GROUP = grp.getgrgid(pwd.getpwnam(USER).pw_gid).gr_name
# Anything that tries the network fails at once (the loopback discard port).
OFFLINE_ENV = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "http_proxy": "http://127.0.0.1:9",
               "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


def build_bundle(out: Path, version: str, arch: str = ARCH, python: str = PY) -> Path:
    result = subprocess.run([sys.executable, str(ROOT / "systemd/bundle.py"), "--arch", arch,
                             "--python", python, "--out", str(out), "--version", version],
                            timeout=600, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    tarball = out / f"edgenode-{version}-{arch}-py{python}.tar.gz"
    with tarfile.open(tarball) as tar:
        tar.extractall(out, filter="tar")
    return out / tarball.name.removesuffix(".tar.gz")


def install(bundle: Path, root: Path, *args: str, ready: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE_ENV}
    if ready is not None:
        env["EDGENODE_READY_CMD"] = ready
    result = subprocess.run(["bash", str(bundle / "systemd/install.sh"), "--offline", "--root",
                             str(root), "--user", USER, "--python", sys.executable,
                             "--no-compile", *args], capture_output=True, text=True, env=env,
                            timeout=600, stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"), VERSION)


@pytest.fixture(scope="module")
def installed(bundle, tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("node")
    return root, install(bundle, root, "--time-server", "ntp.site.lan").stdout


def linked_copy(src: Path, dst: Path) -> Path:
    """A copy of the bundle made of hard links (60 MB of wheels, copied in no time)."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def mode(path: Path) -> int:
    return path.lstat().st_mode & 0o7777


def owner(path: Path) -> tuple[str, str]:
    st = path.lstat()
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name


def test_bundle_holds_wheels_scripts_units_and_checksums(bundle):
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert {"BUNDLE", "SHA256SUMS", "systemd/install.sh", "systemd/edgenode-rollback",
            "systemd/uninstall.sh", "systemd/edgenode.service",
            "systemd/edgenode-firstboot.service", "hardware/99-edgenode.rules",
            "hardware/config.txt", "hardware/configs/pi5-iwr6843-uma16.toml"} <= names
    assert f"wheels/edgenode-{VERSION}-py3-none-any.whl" in names
    listed = {line.split()[1] for line in (bundle / "SHA256SUMS").read_text().splitlines()}
    assert listed == names - {"SHA256SUMS"}
    assert f"arch={ARCH}\npython={PY}\n" in (bundle / "BUNDLE").read_text()


def test_offline_install_lays_out_release_config_state_and_units(installed):
    root, out = installed
    opt = root / "opt/edgenode"
    assert os.readlink(opt / "current") == f"releases/{VERSION}"
    assert not (opt / "previous").exists()
    venv_edgenode = opt / "current/venv/bin/edgenode"
    version = subprocess.run([str(venv_edgenode), "version"], capture_output=True, text=True,
                             check=True).stdout
    assert version.strip() == f"edgenode {VERSION}"
    # The [pi] parts with a wheel are in; systemd-python (sdist only) is named, not built.
    subprocess.run([str(opt / "current/venv/bin/python"), "-c", "import gpiod"], check=True)
    assert "optional systemd-python not installed" in out
    # The release carries the templates provisioning uses, and its build's checksums.
    assert (opt / "current/hardware/configs/pi5-iwr6843-uma16.toml").is_file()
    assert (opt / "current/SHA256SUMS").is_file() and (opt / "current/.complete").is_file()
    expected = {
        "opt/edgenode": (0o755, (USER, GROUP)),
        f"opt/edgenode/releases/{VERSION}": (0o755, (USER, GROUP)),
        "etc/edgenode": (0o750, (USER, GROUP)),
        "etc/edgenode/credentials": (0o750, (USER, GROUP)),
        "etc/edgenode/credentials/mqtt-password": (0o640, (USER, GROUP)),
        "etc/edgenode/operators": (0o750, (USER, GROUP)),
        "var/lib/edgenode": (0o750, (USER, GROUP)),
        "etc/systemd/system/edgenode.service": (0o644, (USER, GROUP)),
        "etc/systemd/system/edgenode-firstboot.service": (0o644, (USER, GROUP)),
        "etc/udev/rules.d/99-edgenode.rules": (0o644, (USER, GROUP)),
        "etc/systemd/timesyncd.conf.d/edgenode.conf": (0o644, (USER, GROUP)),
        "usr/local/bin/edgenode-rollback": (0o755, (USER, GROUP)),
    }
    got = {rel: (mode(root / rel), owner(root / rel)) for rel in expected}
    assert got == expected
    assert os.readlink(root / "usr/local/bin/edgenode") == \
        "/opt/edgenode/current/venv/bin/edgenode"
    assert "NTP=ntp.site.lan" in (root / "etc/systemd/timesyncd.conf.d/edgenode.conf").read_text()
    assert not (root / "etc/edgenode/edgenode.toml").exists()   # identity comes from provision
    # Nothing was done to this machine: the system commands were only named.
    assert "test root, not run: systemctl enable edgenode.service edgenode-firstboot.service" \
        in out
    assert "test root, not run: udevadm control --reload-rules" in out
    assert "not provisioned yet: run 'edgenode provision" in out
    # The boot config lines are printed, not applied.
    assert "gpio=17,27=op,dl,pd" in out and not (root / "boot").exists()


def test_second_run_with_the_same_version_changes_nothing(bundle, installed):
    root, _ = installed
    before = tree_hash(root)
    out = install(bundle, root).stdout           # no --time-server: the one given stays
    assert "release 0.1.0 already installed" in out and "nothing to switch" in out
    assert "time sync towards ntp.site.lan" in out
    assert tree_hash(root) == before


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_installed_units_verify(installed):
    root, _ = installed
    units = sorted((root / "etc/systemd/system").glob("edgenode*.service"))
    assert len(units) == 2
    result = verify(units, root, root / "opt/edgenode/current/venv/bin/edgenode")
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), \
        result.stdout + result.stderr


def test_provision_with_the_installed_release(installed, tmp_path, capsys):
    """Provisioning under the root finds the installed release's hardware templates."""
    root, _ = installed
    templates = root / "opt/edgenode/current/hardware/configs"
    (templates / "only-in-the-release.toml").write_bytes(
        (templates / "pi4-ops243-respeaker4.toml").read_bytes())
    ca = ControlRoomCA().write(tmp_path / "ca.pem")
    key = operator_key(tmp_path, "carol")
    assert main(["provision", "--site", "west", "--node", "mast-01", "--broker",
                 "mqtts://broker.example.net:8883", "--ca", str(ca), "--hardware",
                 "only-in-the-release", "--operator-key", str(key), "--root", str(root),
                 "--owner", USER]) == 0
    (templates / "only-in-the-release.toml").unlink()
    assert "provisioned site west node mast-01" in capsys.readouterr().out
    assert load_installed_config(root / "etc/edgenode/edgenode.toml").node.id == "mast-01"
    assert owner(root / "etc/edgenode/node.key") == (USER, GROUP)
    assert mode(root / "etc/edgenode/node.key") == 0o600


def test_boot_config_is_applied_only_when_asked_and_once(bundle, installed):
    root, _ = installed
    boot = root / "boot/firmware/config.txt"
    boot.parent.mkdir(parents=True)
    boot.write_text("[all]\narm_64bit=1\n")
    install(bundle, root)
    assert boot.read_text() == "[all]\narm_64bit=1\n"
    install(bundle, root, "--apply-boot-config")
    text = boot.read_text()
    assert text.startswith("[all]\narm_64bit=1\n# BEGIN edgenode\n")
    assert "gpio=17,27=op,dl,pd" in text and text.count("# BEGIN edgenode") == 1
    out = install(bundle, root, "--apply-boot-config").stdout
    assert "already has the edgenode lines" in out and boot.read_text() == text


def test_a_bundle_that_does_not_match_its_checksums_is_refused(bundle, tmp_path):
    copy = linked_copy(bundle, tmp_path / "bundle")
    wheel = next((copy / "wheels").glob("edgenode-*.whl"))
    data = wheel.read_bytes()
    wheel.unlink()                              # a new file: the original stays intact
    wheel.write_bytes(data + b"\0")
    root = tmp_path / "node"
    result = install(copy, root, check=False)
    assert result.returncode == 1
    assert "does not match its SHA256SUMS, refusing to install" in result.stderr
    assert wheel.name in result.stderr
    assert not (root / "opt").exists()


def test_a_bundle_with_a_file_slipped_in_is_refused(bundle, tmp_path):
    copy = linked_copy(bundle, tmp_path / "bundle")
    (copy / "wheels/evil-1.0-py3-none-any.whl").write_bytes(b"PK")
    result = install(copy, tmp_path / "node", check=False)
    assert result.returncode == 1
    assert "holds files not in its SHA256SUMS" in result.stderr and "evil-1.0" in result.stderr


def test_offline_from_a_checkout_is_refused(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "systemd/install.sh"), "--offline", "--root",
                             str(tmp_path), "--user", USER], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 1 and "--offline installs from a bundle only" in result.stderr


@pytest.mark.long
def test_upgrade_rolls_back_by_itself_when_not_ready_then_goes_ahead_and_rolls_back(
        installed, tmp_path):
    root, _ = installed
    if not (root / "etc/edgenode/edgenode.toml").exists():
        pytest.skip("needs the provisioned node of test_provision_with_the_installed_release")
    newer = build_bundle(tmp_path / "b2", "0.1.1")
    opt = root / "opt/edgenode"
    failed = install(newer, root, ready="exit 1", check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "did not get READY within 60 s: rolling back to releases/0.1.0" in failed.stdout
    assert os.readlink(opt / "current") == "releases/0.1.0"
    assert os.readlink(opt / "previous") == "releases/0.1.1"
    assert (opt / "releases/0.1.1/.complete").exists()      # kept beside, for a retry
    ok = install(newer, root, ready="true")
    assert "current -> releases/0.1.1 (previous: releases/0.1.0)" in ok.stdout
    assert os.readlink(opt / "current") == "releases/0.1.1"
    assert subprocess.run([str(opt / "current/venv/bin/edgenode"), "version"],
                          capture_output=True, text=True).stdout.strip() == "edgenode 0.1.1"
    subprocess.run(["bash", str(ROOT / "systemd/edgenode-rollback"), "--root", str(root)],
                   check=True, capture_output=True)
    assert os.readlink(opt / "current") == "releases/0.1.0"
    assert os.readlink(opt / "previous") == "releases/0.1.1"
    assert (root / "etc/edgenode/edgenode.toml").exists()   # config untouched throughout


@pytest.mark.long
@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("pkg-config") is None,
                    reason="needs gcc and pkg-config (make apt)")
def test_build_optional_builds_systemd_python_from_the_bundle_offline(bundle, tmp_path):
    root = tmp_path / "node"
    out = install(bundle, root, "--build-optional").stdout
    assert "optional systemd-python built from its sdist" in out
    python = root / "opt/edgenode/current/venv/bin/python"
    subprocess.run([str(python), "-c", "from systemd import daemon; daemon.notify"], check=True)


@pytest.mark.long
def test_uninstall_keeps_config_and_state_unless_purged(installed):
    root, _ = installed
    (root / "var/lib/edgenode/outbox.sqlite").write_bytes(b"state")
    subprocess.run(["bash", str(ROOT / "systemd/uninstall.sh"), "--root", str(root)],
                   check=True, capture_output=True)
    assert not (root / "opt/edgenode").exists()
    assert not (root / "etc/systemd/system/edgenode.service").exists()
    assert not (root / "etc/udev/rules.d/99-edgenode.rules").exists()
    assert not (root / "usr/local/bin/edgenode").is_symlink()
    assert (root / "etc/edgenode/credentials").is_dir()
    assert (root / "var/lib/edgenode/outbox.sqlite").read_bytes() == b"state"
    subprocess.run(["bash", str(ROOT / "systemd/uninstall.sh"), "--root", str(root), "--purge"],
                   check=True, capture_output=True)
    assert not (root / "etc/edgenode").exists() and not (root / "var/lib/edgenode").exists()


def test_make_bundle_passes_arch_and_the_units_python():
    """PY= on make's command line names the unit's Python; the recipes keep the venv's."""
    out = subprocess.run(["make", "-n", "bundle", "ARCH=aarch64", "PY=3.13"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert ".venv/bin/python systemd/bundle.py --arch aarch64 --python 3.13 --out dist" in out
    out = subprocess.run(["make", "-n", "bundle"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "--arch aarch64 --python 3.11" in out

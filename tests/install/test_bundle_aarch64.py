"""`make bundle ARCH=aarch64 PY=3.11` (Raspberry Pi OS bookworm): a wheel for the Pi, or a
named sdist, for every dependency. Long: it downloads ~60 MB from the package index."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from tests.install.helpers import ROOT

# No wheel for the Pi: carried as an sdist, built on the unit only with --build-optional
# (README, "For installers").
SDIST_ONLY = {"systemd-python"}


def core_requirements() -> list[Requirement]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]
                                      ["pi"]]]


@pytest.mark.long
@pytest.mark.timeout(900)
def test_aarch64_bundle_has_a_pi_wheel_or_named_sdist_for_every_dependency(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "systemd/bundle.py"), "--arch", "aarch64",
                    "--python", "3.11", "--out", str(tmp_path)], check=True, timeout=900,
                   capture_output=True)
    (tarball,) = tmp_path.glob("edgenode-*-aarch64-py3.11.tar.gz")
    with tarfile.open(tarball) as tar:
        names = [Path(n) for n in tar.getnames()]
    wheels = {}
    for name in names:
        if name.parent.name == "wheels":
            project, _, _, tags = parse_wheel_filename(name.name)
            wheels[project] = {t.platform for t in tags}
    sdists = {parse_sdist_filename(n.name)[0] for n in names if n.parent.name == "sdist"}
    for req in core_requirements():
        name = canonicalize_name(req.name)
        if name in SDIST_ONLY:
            assert name in sdists, f"{name}: neither wheel nor sdist in the bundle"
            continue
        assert name in wheels, f"{name}: no wheel in the bundle"
        platforms = wheels[name]
        assert platforms == {"any"} or all("aarch64" in p for p in platforms), \
            f"{name}: wheel for {platforms}, not for the Pi"
    # Every wheel is for the Pi (or pure Python), for CPython 3.11 where it is compiled.
    for name in names:
        if name.parent.name == "wheels":
            assert "x86_64" not in name.name and ("cp3" not in name.name
                                                  or "cp311" in name.name), name.name
    assert sdists == SDIST_ONLY
    assert "lgpio" in wheels          # rpi-lgpio's own dependency (manylinux_2_34: bookworm's
    #                                   glibc 2.36 takes it)
    with tarfile.open(tarball) as tar:
        info = next(m for m in tar.getmembers() if m.name.endswith("/BUNDLE"))
        text = tar.extractfile(info).read().decode()  # type: ignore[union-attr]
    assert "extras=gpiod rpi-lgpio\n" in text and "sdists=systemd-python\n" in text

"""`make bundle ARCH=aarch64 PY=3.11|3.13` (Raspberry Pi OS bookworm / trixie): a wheel for the
Pi, or a named sdist, for every dependency. Long: each downloads ~60 MB from the package
index."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from tests.install.helpers import ROOT

# No wheel for the Pi: carried as sdists, built on the unit only with --build-optional
# (README, "For installers"). lgpio has no cp313 wheel, so on trixie rpi-lgpio goes with it.
SDIST_ONLY = {"3.11": {"systemd-python"}, "3.13": {"systemd-python", "rpi-lgpio", "lgpio"}}
EXTRAS = {"3.11": "gpiod rpi-lgpio", "3.13": "gpiod"}


def core_requirements() -> list[Requirement]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]
                                      ["pi"]]]


@pytest.mark.long
@pytest.mark.timeout(900)
@pytest.mark.parametrize("python", ["3.11", "3.13"])
def test_aarch64_bundle_has_a_pi_wheel_or_named_sdist_for_every_dependency(tmp_path, python):
    subprocess.run([sys.executable, str(ROOT / "systemd/bundle.py"), "--arch", "aarch64",
                    "--python", python, "--out", str(tmp_path)], check=True, timeout=900,
                   capture_output=True)
    (tarball,) = tmp_path.glob(f"edgenode-*-aarch64-py{python}.tar.gz")
    cp = "cp" + python.replace(".", "")
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
        if name in SDIST_ONLY[python]:
            assert name in sdists, f"{name}: neither wheel nor sdist in the bundle"
            continue
        assert name in wheels, f"{name}: no wheel in the bundle"
        platforms = wheels[name]
        assert platforms == {"any"} or all("aarch64" in p for p in platforms), \
            f"{name}: wheel for {platforms}, not for the Pi"
    # Every wheel is for the Pi (or pure Python), for this CPython (or the stable ABI from 3.11).
    for name in names:
        if name.parent.name == "wheels":
            assert "x86_64" not in name.name and ("cp3" not in name.name or cp in name.name
                                                  or "cp311-abi3" in name.name), name.name
    assert sdists == SDIST_ONLY[python]
    with tarfile.open(tarball) as tar:
        info = next(m for m in tar.getmembers() if m.name.endswith("/BUNDLE"))
        text = tar.extractfile(info).read().decode()  # type: ignore[union-attr]
    assert f"extras={EXTRAS[python]}\n" in text
    assert set(text.split("sdists=")[1].split("\n")[0].split()) == \
        SDIST_ONLY[python] - {"lgpio"}   # lgpio comes as rpi-lgpio's dependency

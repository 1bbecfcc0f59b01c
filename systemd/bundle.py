#!/usr/bin/env python3
"""Build the offline install bundle: `make bundle [ARCH=aarch64|x86_64] [PY=3.11|3.13]`.

One tarball holds the project's wheel, every dependency as a wheel for the target (Raspberry Pi
OS bookworm = Python 3.11, trixie = 3.13, on arm64), the optional parts that have no wheel for
the target as sdists (built on the unit when its toolchain is there, skipped otherwise), the
install / rollback / uninstall scripts, the units, the udev rules, the boot config lines and the
hardware config templates, and SHA256SUMS over all of it (install.sh refuses a bundle that does
not match it).

Runs with the development venv's Python and pip; needs the package index (it is the one step
of an install that does).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from email.parser import Parser
from pathlib import Path
from zipfile import ZipFile

from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
ARCHES = ("aarch64", "x86_64")
PYTHONS = ("3.11", "3.13")
# glibc of the targets: bookworm 2.36, trixie 2.41. pip takes exact platform tags, so every
# manylinux level a wheel may carry up to the target's glibc is offered.
GLIBC_MAX = {"3.11": 36, "3.13": 41}
# The unit's build and packaging tools, so an sdist can be built with no index (pip's build
# isolation needs them as wheels).
BUILD_TOOLS = ("setuptools>=68", "wheel")
# What the bundle carries besides wheels: source path -> path in the bundle.
FILES = {
    "systemd/install.sh": "systemd/install.sh",
    "systemd/edgenode-rollback": "systemd/edgenode-rollback",
    "systemd/uninstall.sh": "systemd/uninstall.sh",
    "systemd/edgenode.service": "systemd/edgenode.service",
    "systemd/edgenode-firstboot.service": "systemd/edgenode-firstboot.service",
    "systemd/timesyncd-edgenode.conf": "systemd/timesyncd-edgenode.conf",
    "hardware/99-edgenode.rules": "hardware/99-edgenode.rules",
    "hardware/config.txt": "hardware/config.txt",
    "systemd/edgenode-provision.example.toml": "systemd/edgenode-provision.example.toml",
    "README.md": "README.md",
}
SOURCE = ("pyproject.toml", "README.md", "edgenode", "hal")


def platforms(arch: str, python: str) -> list[str]:
    tags = [f"manylinux2014_{arch}"]
    tags += [f"manylinux_2_{minor}_{arch}" for minor in range(17, GLIBC_MAX[python] + 1)]
    return tags


def pip(*args: str, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", *args]
    if quiet:
        cmd.append("-q")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        # pip's own "location is ignored" noise about the machine's file:// indexes says nothing
        errors = [line for line in result.stderr.splitlines() if "is ignored" not in line]
        raise RuntimeError(f"pip {args[0]} failed:\n" + "\n".join(errors[-15:]))
    return result


def _local_build_tools() -> bool:
    """setuptools and wheel here (the dev extra has them): build without a fresh build env."""
    try:
        import setuptools
        import wheel  # noqa: F401
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 68


def pip_build(*args: str) -> None:
    """pip wheel / download of an sdist: with the local build tools when they do, else isolated
    (which fetches setuptools into a throw-away env each time: slower, same result)."""
    if _local_build_tools():
        try:
            pip(*args, "--no-build-isolation")
            return
        except RuntimeError:
            pass
    pip(*args)


def build_project_wheel(out: Path, version: str | None) -> Path:
    """Build from a copy, so setuptools' build/ and egg-info never land in the checkout."""
    with tempfile.TemporaryDirectory(prefix="edgenode-src-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in SOURCE:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, src / name)
        if version is not None:
            init = src / "edgenode" / "__init__.py"
            text = re.sub(r'(?m)^__version__ = ".*"$', f'__version__ = "{version}"',
                          init.read_text(encoding="utf-8"))
            init.write_text(text, encoding="utf-8")
        pip_build("wheel", "--no-deps", "-w", str(out), str(src))
    wheels = sorted(out.glob("edgenode-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one edgenode wheel in {out}, found {wheels}")
    return wheels[0]


def wheel_metadata(wheel: Path) -> tuple[str, list[Requirement]]:
    with ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(name).decode("utf-8"))
    return meta["Version"], [Requirement(r) for r in meta.get_all("Requires-Dist") or []]


def target_env(arch: str, python: str) -> dict[str, str]:
    """Marker environment of the unit (pip evaluates markers on the build host otherwise)."""
    return {"platform_machine": arch, "python_version": python, "python_full_version":
            f"{python}.0", "sys_platform": "linux", "platform_system": "Linux",
            "os_name": "posix", "implementation_name": "cpython",
            "platform_python_implementation": "CPython"}


def applies(req: Requirement, env: dict[str, str], extra: str) -> bool:
    if req.marker is None:
        return extra == ""
    return Marker(str(req.marker)).evaluate({**env, "extra": extra})


def download_wheels(reqs: list[str], dest: Path, arch: str, python: str) -> None:
    args = ["download", "-d", str(dest), "--only-binary=:all:", "--python-version", python,
            "--implementation", "cp"]
    for tag in platforms(arch, python):
        args += ["--platform", tag]
    pip(*args, *reqs)


def fill(bundle: Path, arch: str, python: str, version: str | None) -> dict[str, str]:
    wheels = bundle / "wheels"
    sdists = bundle / "sdist"
    wheels.mkdir(parents=True)
    sdists.mkdir()
    project = build_project_wheel(wheels, version)
    version, requires = wheel_metadata(project)
    env = target_env(arch, python)
    core = [str(r) for r in requires if applies(r, env, "")]
    pi = [r for r in requires if r.marker is not None and applies(r, env, "pi")
          and not applies(r, env, "")]
    download_wheels([*core, *BUILD_TOOLS], wheels, arch, python)
    with_wheel, sdist_only = [], []
    for req in pi:
        plain = Requirement(str(req).split(";")[0])
        try:
            download_wheels([str(plain)], wheels, arch, python)
            with_wheel.append(plain.name)
        except RuntimeError:
            # No wheel for the target (systemd-python; rpi-lgpio on 3.13, whose lgpio has
            # none either): its sdist and its dependencies' sdists, built on the unit only
            # with install.sh --build-optional.
            pip_build("download", "-d", str(sdists), "--no-binary=:all:", str(plain))
            sdist_only.append(plain.name)
    for src, dst in FILES.items():
        target = bundle / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / src, target)
    shutil.copytree(ROOT / "hardware" / "configs", bundle / "hardware" / "configs")
    # install.sh installs the project with the [pi] parts that have wheels ("extras") and
    # builds the others ("sdists") only when asked.
    return {"version": version, "arch": arch, "python": python, "extras": " ".join(with_wheel),
            "sdists": " ".join(sdist_only)}


def write_manifest(bundle: Path) -> None:
    lines = []
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(bundle).as_posix()}\n")
    (bundle / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


def build(arch: str, python: str, out_dir: Path, version: str | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgenode-bundle-") as tmp:
        staging = Path(tmp) / "staging"
        info = fill(staging, arch, python, version)
        name = f"edgenode-{info['version']}-{arch}-py{python}"
        (staging / "BUNDLE").write_text("".join(f"{k}={v}\n" for k, v in info.items()),
                                        encoding="utf-8")
        write_manifest(staging)
        bundle = staging.rename(Path(tmp) / name)
        tarball = out_dir / f"{name}.tar.gz"
        partial = tarball.with_suffix(".partial")
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(bundle, arcname=name)
        os.replace(partial, tarball)
    return tarball


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="aarch64", choices=ARCHES)
    parser.add_argument("--python", default="3.11", choices=PYTHONS)
    parser.add_argument("--out", default="dist", help="directory for the tarball")
    parser.add_argument("--version", help="override the project version (test builds)")
    args = parser.parse_args(argv)
    try:
        tarball = build(args.arch, args.python, Path(args.out), args.version)
    except (RuntimeError, OSError) as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 1
    print(tarball)
    return 0


if __name__ == "__main__":
    sys.exit(main())

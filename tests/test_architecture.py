"""The tree keeps the architecture's rooms and boundaries (../shared/ARCHITECTURE.md)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests.importgraph import Import, circles, imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgenode", "hal")


@functools.cache
def _tree_imports() -> tuple[Import, ...]:
    """The tree's imports, parsed once for the module's checks (a parse takes about 1 s)."""
    return tuple(imports(ROOT, PACKAGES))


def _hits(where: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return [f"{i.module}:{i.line} imports {i.name}" for i in _tree_imports()
            if (i.module == where or i.module.startswith(where + "."))
            and not any(i.module == a or i.module.startswith(a + ".") for a in allowed)
            and any(i.name == f or i.name.startswith(f + ".") for f in forbidden)]


def test_no_import_circles_in_edgenode_or_hal():
    found = circles(ROOT, PACKAGES)
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_hal_never_imports_edgenode():
    assert not _hits("hal", ("edgenode",))


def test_detection_does_no_io_imports():
    assert not _hits("edgenode.detect", ("paho", "hal.ports", "serial", "smbus2", "gpiod", "RPi",
                                         "socket", "sqlite3"))


def test_identify_is_pure():
    assert not _hits("edgenode.identify", ("paho", "hal", "serial", "smbus2", "gpiod", "RPi",
                                           "socket", "sqlite3", "pyModeS"))


def test_only_link_and_central_import_paho():
    assert not _hits("edgenode", ("paho",), allowed=("edgenode.link", "edgenode.central"))
    assert not _hits("hal", ("paho",))


def test_only_interop_speaks_the_peers_languages():
    """SAPIENT's and TAK's bindings stay in their rooms, and those rooms take what they send
    from the daemon's events, never from the relay, the link, a command or the hardware."""
    assert not _hits("edgenode", ("sapient_msg", "takproto"), allowed=("edgenode.interop",))
    assert not _hits("hal", ("sapient_msg", "takproto"))
    assert not _hits("edgenode.interop", ("paho", "hal", "edgenode.control", "edgenode.link",
                                          "edgenode.daemon", "edgenode.cli"))


def test_only_control_touches_the_relay():
    assert not _hits("edgenode", ("hal.relay",), allowed=("edgenode.control",))


def test_no_library_imports_a_command_or_the_daemon():
    assert not _hits("edgenode", ("edgenode.cli",), allowed=("edgenode.cli", "edgenode.__main__"))
    assert not _hits("edgenode", ("edgenode.daemon",), allowed=("edgenode.cli", "edgenode.daemon",
                                                                "edgenode.web"))
    # the status page is a client of the daemon's control socket, nothing more
    web = _hits("edgenode.web", ("edgenode.daemon",))
    assert all(hit.endswith("edgenode.daemon.control_socket.request") for hit in web), web


def test_few_loose_modules_in_edgenode():
    loose = sorted(p.name for p in (ROOT / "edgenode").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "health.py", "logs.py", "ulid.py"]


# -- the checker itself, on a made-up package ----------------------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize("b_text", [
    "from pkg.a import x\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n",
    "from . import a\n",
    "import pkg.a\n",
], ids=["runtime", "type-only", "relative", "plain import"])
def test_the_checker_names_a_circle(tmp_path, b_text):
    root = _package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg.b import y\nx = 1\n",
                               "pkg/b.py": b_text + "y = 2\n"})
    assert circles(root, ("pkg",)) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_the_checker_finds_a_longer_circle_and_passes_a_clean_tree(tmp_path):
    root = _package(tmp_path, {"pkg/__init__.py": "from pkg.a import x\n",
                               "pkg/a.py": "from pkg.sub.c import z\nx = 1\n",
                               "pkg/sub/__init__.py": "",
                               "pkg/sub/c.py": "from pkg.b import y\nz = 3\n",
                               "pkg/b.py": "import json\ny = 2\n"})
    assert circles(root, ("pkg",)) == []
    (root / "pkg/b.py").write_text("from pkg.a import x\ny = 2\n")
    assert circles(root, ("pkg",)) == [["pkg.a", "pkg.sub.c", "pkg.b", "pkg.a"]]

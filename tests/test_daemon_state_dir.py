"""Where the daemon keeps its state: --state-dir, then $STATE_DIRECTORY (systemd's
StateDirectory=, first entry), then [storage] state_dir, then /var/lib/edgenode. Checked
through a real command that names the directory it resolved (`edgenode audit verify`)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EDGENODE, ROOT
from tests.test_daemon_lifecycle import write_config


def resolved_state_dir(config: Path, *args: str, env_state: str | None = None) -> Path:
    env = dict(os.environ)
    env.pop("STATE_DIRECTORY", None)
    if env_state is not None:
        env["STATE_DIRECTORY"] = env_state
    run = subprocess.run([*EDGENODE, "audit", "verify", "--config", str(config), *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    # "audit: no audit log at DIR/audit", or "audit: DIR/audit: chain ..." where one exists
    found = re.search(r"^audit: (?:no audit log at )?(/.*?/audit)(?::|$)",
                      run.stdout + run.stderr, re.MULTILINE)
    assert found, run.stdout + run.stderr
    return Path(found.group(1)).parent


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, f'\n[storage]\nstate_dir = "{tmp_path / "from-config"}"\n')


def test_the_command_line_wins_over_everything(config: Path, tmp_path: Path) -> None:
    assert resolved_state_dir(config, "--state-dir", str(tmp_path / "from-flag"),
                              env_state=str(tmp_path / "from-env")) == tmp_path / "from-flag"


def test_systemds_state_directory_wins_over_the_config(config: Path, tmp_path: Path) -> None:
    # systemd sets a colon-separated list when the unit names several: the first is ours.
    both = f"{tmp_path / 'from-env'}:{tmp_path / 'other'}"
    assert resolved_state_dir(config, env_state=both) == tmp_path / "from-env"


def test_the_config_wins_over_the_default(config: Path, tmp_path: Path) -> None:
    assert resolved_state_dir(config) == tmp_path / "from-config"
    assert resolved_state_dir(config, env_state="") == tmp_path / "from-config"


def test_the_default_is_var_lib_edgenode(tmp_path: Path) -> None:
    assert resolved_state_dir(write_config(tmp_path)) == Path("/var/lib/edgenode")


def test_a_state_directory_linked_to_nowhere_is_named_with_the_fix(config: Path,
                                                                   tmp_path: Path) -> None:
    # Issue 22.19: a dangling symlink gave a bare FileExistsError.
    link = tmp_path / "state"
    link.symlink_to(tmp_path / "gone")
    run = subprocess.run([*EDGENODE, "run", "--config", str(config), "--state-dir", str(link)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert f"state directory {link} is a link to {tmp_path / 'gone'}" in run.stderr
    assert "FileExistsError" not in run.stderr

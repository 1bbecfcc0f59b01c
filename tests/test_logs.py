"""Log lines: sd-daemon priority prefixes when stderr is the journal, JSON on request."""

from __future__ import annotations

import calendar
import json
import os
import re
import subprocess
import time
from pathlib import Path

from tests.conftest import EDGENODE, ROOT
from tests.test_daemon_lifecycle import write_config

STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z (debug|info|warning|error|critical) +\S")


def run_relay_safe(tmp_path: Path, *args: str, journal: bool) -> list[str]:
    config = write_config(tmp_path)
    log_path = tmp_path / "stderr.log"
    with open(log_path, "w") as err:
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        if journal:
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        subprocess.run([*EDGENODE, "relay-safe", "--config", str(config), *args], cwd=ROOT,
                       env=env, stderr=err, check=True, timeout=20)
    return log_path.read_text().splitlines()


def test_lines_carry_priority_prefixes_when_stderr_is_the_journal(tmp_path: Path) -> None:
    lines = run_relay_safe(tmp_path, journal=True)
    assert any(line.startswith("<6>") and "relay-safe: drive OFF" in line for line in lines)


def test_plain_stderr_has_timestamps_and_no_prefixes(tmp_path: Path) -> None:
    before = time.time()
    lines = run_relay_safe(tmp_path, journal=False)
    after = time.time()
    assert lines and not any(line.startswith("<") for line in lines)
    assert any("edgenode.control.relay: relay-safe: drive OFF" in line for line in lines)
    for line in lines:
        if line.startswith((" ", "Traceback")):
            continue  # a traceback's continuation lines
        stamp = STAMP.match(line)
        assert stamp, f"no UTC timestamp at the start of {line!r}"
        t = calendar.timegm(time.strptime(stamp.group(1), "%Y-%m-%dT%H:%M:%S"))
        assert int(before) <= t <= after, f"timestamp {stamp.group(1)} is not now (UTC)"


def test_json_format_gives_one_object_per_line_naming_the_component(tmp_path: Path) -> None:
    lines = run_relay_safe(tmp_path, "--log-format", "json", journal=False)
    records = [json.loads(line) for line in lines]
    assert {"t", "level", "component", "msg"} <= set(records[0])
    assert all(abs(r["t"] - time.time()) < 30 for r in records), "t is not the Unix time now"
    assert any(r["component"] == "edgenode.control.relay" and "drive OFF" in r["msg"]
               for r in records)

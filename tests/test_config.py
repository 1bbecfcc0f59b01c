"""Config validation: every example validates; mistakes are all reported with their keys."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgenode.config import ConfigError, load_config, load_relay_section
from tests.conftest import EDGENODE, ROOT

EXAMPLES = sorted((ROOT / "hardware").rglob("*.toml"))
NODE_CONFIGS = [p for p in EXAMPLES if "scenarios" not in p.parts]


@pytest.mark.parametrize("path", NODE_CONFIGS, ids=lambda p: p.name)
def test_every_example_config_validates(path: Path) -> None:
    config = load_config(path)
    assert config.effector.enabled is False or config.relay.backend == "sim"


FIVE_MISTAKES = """
[node]
site = "Bad Site"
id = "mast-01"
latitude_deg = 95.0
longitude_deg = 11.9
altitude_m = 12.0
mast_heading_deg = 0.0

[broker]
url = "http://broker:1883"

[relay]
backend = "fake"
drive_line = 17
heartbeat_line = 27
aux_line = 22
key_test_line = 5
key_operate_line = 6
max_on_s = 60
hartbeat_period_ms = 10

[effector]
link_loss_grace_s = 30
"""


def test_five_mistakes_are_all_reported_with_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(FIVE_MISTAKES)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    keys = {p.key for p in info.value.problems}
    assert keys == {"node.site", "node.latitude_deg", "broker.url",
                    "relay.hartbeat_period_ms", "effector.link_loss_grace_s"}
    assert all(p.file == str(path) for p in info.value.problems)


def test_validate_config_cli_lists_problems_and_exits_78(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(FIVE_MISTAKES)
    proc = subprocess.run([*EDGENODE, "validate-config", str(path)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 78
    assert "Traceback" not in proc.stderr
    assert "5 problem(s)" in proc.stderr
    assert f"{path}: node.latitude_deg = 95.0: Input should be less than or equal to 90" \
        in proc.stderr
    assert "relay.hartbeat_period_ms = 10: unknown key" in proc.stderr


def test_missing_mandatory_dead_man_limit_is_an_error(tmp_path: Path) -> None:
    text = (ROOT / "hardware/dev-fake.toml").read_text().replace("max_on_s = 60\n", "")
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [p.key for p in info.value.problems] == ["relay.max_on_s"]


def test_unreadable_and_non_toml_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[node\nsite=")
    with pytest.raises(ConfigError, match=r"bad\.toml: \(syntax\): invalid TOML"):
        load_config(bad)


def test_relay_section_is_read_even_when_the_file_is_broken(tmp_path: Path) -> None:
    text = (ROOT / "hardware/dev-fake.toml").read_text() + "\n[broken\nnonsense = = 1\n"
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)
    assert load_relay_section(path).drive_line == 17


REMOTEID_MISTAKES = """
[node]
site = "s"
id = "n"
latitude_deg = 57.0
longitude_deg = 11.9
altitude_m = 12.0
mast_heading_deg = 0.0

[broker]
url = "mqtt://127.0.0.1:1883"

[relay]
backend = "fake"
drive_line = 17
heartbeat_line = 27
aux_line = 22
key_test_line = 5
key_operate_line = 6
max_on_s = 60

[remoteid]
stale_after_s = 0

[[remoteid.receivers]]
backend = "wifi"
device = "wlan1"

[[remoteid.allow]]
uas_id = "SURVEY-1"
expires = "2027-06-30T18:00:00"
approved_by = "admin"
"""


def test_remoteid_mistakes_are_reported_with_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(REMOTEID_MISTAKES)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    keys = {p.key for p in info.value.problems}
    assert {"remoteid.stale_after_s", "remoteid.receivers.0.backend"} <= keys, keys
    assert "needs a time zone" in text


def test_a_broker_silence_that_breaks_the_link_loss_promise_is_refused(tmp_path: Path) -> None:
    # Issue 22.3: with the effector enabled, a silent broker must drop the relay within
    # effector.link_loss_grace_s + 1 s, whatever broker.keepalive_s is (edgenode/link/watch.py).
    text = (ROOT / "hardware/dev-fake.toml").read_text()
    path = tmp_path / "c.toml"
    path.write_text(text.replace("[broker]\n", "[broker]\nsilence_s = 3\nkeepalive_s = 600\n")
                    + "\n[effector]\nenabled = true\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "broker.silence_s 3" in str(info.value)
    assert "link_loss_grace_s + 1 s" in str(info.value)
    proc = subprocess.run([*EDGENODE, "validate-config", str(path)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 78 and "broker.silence_s" in proc.stderr
    path.write_text(text.replace("[broker]\n", "[broker]\nsilence_s = 3\nkeepalive_s = 600\n"))
    assert load_config(path).broker.silence_s == 3  # no effector: only health relies on it


RELAY_LINES = ('backend = "fake"', "drive_line = 17", "heartbeat_line = 27", "aux_line = 22",
               "key_test_line = 5", "key_operate_line = 6", "max_on_s = 60")


@pytest.mark.parametrize("relay", [
    "[relay]  # the relay board\n" + "\n".join(RELAY_LINES),
    "[ relay ]\n" + "\n".join(RELAY_LINES),
    "\n".join(f"relay.{line}" for line in RELAY_LINES) + "\n[node]\nsite = 'x'",
], ids=["header-comment", "header-spaces", "dotted-keys"])
def test_relay_section_is_read_from_a_broken_file_in_every_toml_spelling(
        tmp_path: Path, relay: str) -> None:
    # Issue 22 point 17: relay-safe must find [relay] however TOML lets it be written.
    path = tmp_path / "c.toml"
    path.write_text(relay + "\n[broken\nnonsense = = 1\n")
    with pytest.raises(ConfigError):
        load_config(path)
    section = load_relay_section(path)
    assert (section.drive_line, section.max_on_s) == (17, 60)


def _with(tmp_path: Path, extra: str, replace: tuple[str, str] = ("", "")) -> Path:
    text = (ROOT / "hardware/dev-fake.toml").read_text().replace(*replace) + extra
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


KEY = 'public_key = "' + "A" * 43 + '="'


@pytest.mark.parametrize(("extra", "replace", "key"), [
    ("", ("127.0.0.1:1883", "127.0.0.1:99999"), "broker.url"),
    ("", ("127.0.0.1:1883", "127.0.0.1:0"), "broker.url"),
    ('\n[effector]\nkeys_dir = "/nonexistent/keys"\n', ("", ""), "effector.keys_dir"),
    ('\n[effector]\nenabled = "yes"\n', ("", ""), "effector.enabled"),
    ("\n[effector]\nenabled = 1\n", ("", ""), "effector.enabled"),
    ("\n[effector]\ntwo_person = 1\n", ("", ""), "effector.two_person"),
    (f'\n[[effector.keys]]\nid = "a"\nrole = "operator"\n{KEY}\n'
     f'[[effector.keys]]\nid = "a"\nrole = "admin"\n{KEY}\n', ("", ""), "effector"),
], ids=["port-99999", "port-0", "missing-keys-dir", "enabled-yes", "enabled-1",
        "two-person-1", "duplicate-key-id"])
def test_validate_config_refuses_what_would_fail_or_mislead_later(
        tmp_path: Path, extra: str, replace: tuple[str, str], key: str) -> None:
    # Issue 22 point 18: each of these passed validation and failed (or misled) at run time.
    path = _with(tmp_path, extra, replace)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [p.key for p in info.value.problems] == [key], info.value.problems
    proc = subprocess.run([*EDGENODE, "validate-config", str(path)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 78, proc.stderr

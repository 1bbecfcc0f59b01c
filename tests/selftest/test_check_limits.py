"""Each check driven past its limits through the inputs it really reads: the result
docs/selftest.md gives (WARN or FAIL), the measured value, a hint naming the likely cause and
the next step, and the boundary where it turns from PASS. No daemon: the checks run on a
minimal node view, the HAL's fakes, real files and real certificates."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgenode.config.models import I2CDevice, RadarSection, SensorsSection
from edgenode.daemon.sensing import I2CStage, RadarStage, ReadingQueue
from edgenode.health import Health
from edgenode.selftest import run_selftest
from edgenode.selftest.broker import broker_checks
from edgenode.selftest.i2c import i2c_checks
from edgenode.selftest.radar import radar_checks
from edgenode.selftest.system import system_checks
from hal.ports.i2c.fake import FakeI2CBus, RegisterMap
from hal.radar.ti_mmwave import encode_frame
from hal.sensors.ina219 import FakeINA219
from hal.sensors.qmc5883l import FakeQMC5883L
from hal.sensors.system import FakeSystemFacts, HostSystemFacts, SystemFacts
from hal.sensors.tmp102 import FakeTMP102

MB = 10**6


def by_name(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in checks}


def hint_says(c: dict[str, Any], *phrases: str) -> None:
    """The hint carries each phrase: the cause and the next step."""
    for phrase in phrases:
        assert phrase in c["hint"], (phrase, c)


# --- system -----------------------------------------------------------------------------


def system_report(system: Any, state_dir: Path) -> dict[str, dict[str, Any]]:
    """`edgenode selftest --part system` on a node whose system facts come from `system`."""
    node = SimpleNamespace(config=SimpleNamespace(), state_dir=state_dir, sensors=[],
                           link=None, system=system, effector=None, effector_state=None)
    return by_name(run_selftest(node, ["system"])["checks"])


def disk(tmp_path: Path, free: int) -> dict[str, Any]:
    return by_name(system_checks({"clock_synced": True}, tmp_path,
                                 disk_free=lambda path: free))["system.disk"]


def test_disk_warns_below_1_gb_and_fails_below_100_mb(tmp_path: Path) -> None:
    assert disk(tmp_path, 1000 * MB)["result"] == "PASS"
    assert disk(tmp_path, 1000 * MB - 1)["result"] == "WARN"
    warn = disk(tmp_path, 640 * MB)
    assert (warn["result"], warn["value"], warn["unit"]) == ("WARN", 640.0, "MB")
    assert warn["expected"] == ">= 1000 MB free"
    hint_says(warn, f"only 640 MB free under {tmp_path}", "outbox and the audit log",
              "free space")
    assert disk(tmp_path, 100 * MB)["result"] == "WARN"
    assert disk(tmp_path, 100 * MB - 1)["result"] == "FAIL"
    fail = disk(tmp_path, 42 * MB)
    assert (fail["result"], fail["value"]) == ("FAIL", 42.0)
    hint_says(fail, f"only 42 MB free under {tmp_path}", "cannot grow",
              "journalctl --vacuum-size")
    empty = disk(tmp_path, 0)
    assert (empty["result"], empty["value"]) == ("FAIL", 0.0)


def test_disk_reads_the_state_directory_by_default_and_fails_when_it_is_missing(
        tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    c = by_name(system_checks({"clock_synced": True}, missing))["system.disk"]
    assert (c["result"], c["value"]) == ("FAIL", None)
    hint_says(c, f"cannot read the state directory {missing}", "exists and is mounted")
    real = by_name(system_checks({"clock_synced": True}, tmp_path))["system.disk"]
    assert real["value"] == pytest.approx(shutil.disk_usage(tmp_path).free / MB, abs=50)


def test_an_unsynchronised_clock_fails_and_says_arm_and_engage_are_refused(
        tmp_path: Path) -> None:
    system = FakeSystemFacts(clock_synced=True)
    ok = system_report(system, tmp_path)["system.clock"]
    assert (ok["result"], ok["value"]) == ("PASS", True)
    system.set(clock_synced=False)
    c = system_report(system, tmp_path)["system.clock"]
    assert (c["result"], c["value"], c["expected"]) == ("FAIL", False, "synchronised")
    hint_says(c, "not synchronised", "arm and engage are refused",
              "timedatectl timesync-status")


class _UnreadableSystem:
    """A system facts source whose read fails (the twin's socket gone, say)."""

    def read(self) -> SystemFacts:
        raise OSError("twin socket closed")


def test_unreadable_system_facts_fail_the_clock_and_skip_the_rest_naming_why(
        tmp_path: Path) -> None:
    checks = system_report(_UnreadableSystem(), tmp_path)
    clock = checks["system.clock"]
    assert (clock["result"], clock["value"]) == ("FAIL", None)
    hint_says(clock, "cannot read the system facts (twin socket closed)",
              "arm and engage are refused", "chrony")
    for name in ("system.cpu_temp", "system.power"):
        assert checks[name]["result"] == "SKIP"
        hint_says(checks[name], "twin socket closed")


def cpu_temp(tmp_path: Path, millidegrees: str) -> dict[str, Any]:
    """The check on a thermal zone file as sysfs gives it (millidegrees C)."""
    zone = tmp_path / "thermal_zone0_temp"
    zone.write_text(millidegrees + "\n")
    return system_report(HostSystemFacts(device=str(zone)), tmp_path)["system.cpu_temp"]


def test_cpu_temperature_warns_from_70_c_and_fails_from_80_c(tmp_path: Path) -> None:
    cool = cpu_temp(tmp_path, "69999")
    assert (cool["result"], cool["value"], cool["unit"]) == ("PASS", 69.999, "C")
    warm = cpu_temp(tmp_path, "70000")
    assert (warm["result"], warm["value"], warm["expected"]) == ("WARN", 70.0, "< 70 C")
    hint_says(warm, "CPU at 70 C, near throttling", "ventilation and sun shade")
    assert cpu_temp(tmp_path, "79999")["result"] == "WARN"
    hot = cpu_temp(tmp_path, "80000")
    assert (hot["result"], hot["value"]) == ("FAIL", 80.0)
    hint_says(hot, "CPU at 80 C: the board throttles", "ventilation", "heat sink")


def test_no_thermal_zone_skips_the_cpu_temperature(tmp_path: Path) -> None:
    c = system_report(HostSystemFacts(device=str(tmp_path / "none")), tmp_path)
    assert c["system.cpu_temp"]["result"] == "SKIP"
    hint_says(c["system.cpu_temp"], "no CPU temperature sensor")


def power(tmp_path: Path, throttled: int | None) -> dict[str, Any]:
    return system_report(FakeSystemFacts(throttled=throttled), tmp_path)["system.power"]


def test_under_voltage_now_fails_throttling_now_or_since_boot_warns(tmp_path: Path) -> None:
    assert (power(tmp_path, 0)["result"], power(tmp_path, 0)["value"]) == ("PASS", "0x0")
    now = power(tmp_path, 0x1)
    assert (now["result"], now["value"], now["expected"]) == ("FAIL", "0x1", "0x0")
    hint_says(now, "under-voltage now", "supply or its cable is too weak", "rated supply")
    # Under-voltage now wins over everything else set with it.
    assert power(tmp_path, 0x5000F)["result"] == "FAIL"
    for bits, names in ((0x2, "frequency capped"), (0x4, "throttled"),
                        (0x8, "soft temperature limit"),
                        (0x6, "frequency capped, throttled")):
        c = power(tmp_path, bits)
        assert (c["result"], c["value"]) == ("WARN", f"0x{bits:x}"), bits
        hint_says(c, f"held back now ({names})", "check the cooling and the power supply")
    boot = power(tmp_path, 0x50000)  # the usual trace of a weak supply: UV and throttled
    assert (boot["result"], boot["value"]) == ("WARN", "0x50000")
    hint_says(boot, "under-voltage, throttled happened since boot (not now)",
              "supply and its cable")
    assert power(tmp_path, 0x80000)["result"] == "WARN"


def test_power_skips_off_a_pi(tmp_path: Path) -> None:
    c = power(tmp_path, None)
    assert c["result"] == "SKIP"
    hint_says(c, "no vcgencmd")


# --- radar ------------------------------------------------------------------------------


def radar_window(numbers: list[int], window_s: float) -> dict[str, dict[str, Any]]:
    """The radar checks over a window in which the module sent frames numbered `numbers`:
    the daemon's radar stage (frame period 100 ms, so 10 frames/s) reads them from a pyserial
    loopback port; its facts are stamped `window_s` apart (the self-test's two reads)."""
    section = RadarSection(model="ti-mmwave", data_port="loop://", frame_period_ms=100)
    stage = RadarStage(section, Path("."), Health(), ReadingQueue())
    try:
        before = {**stage.selftest_facts(), "t": 0.0}
        if not numbers:
            stage.step()  # opens the port and waits for a byte that does not come
        for n in numbers:
            stage.port.write(encode_frame(n, np.zeros((2, 6), np.float32)))
            while stage.port.bytes_in < stage.port.bytes_out:
                stage.step()
        after = {**stage.selftest_facts(), "t": window_s}
    finally:
        stage.close()
    assert after["frames"] == len(numbers) and after["port_error"] is None
    return by_name(radar_checks(before, after))


def test_frames_more_than_25_percent_off_the_configured_rate_warn() -> None:
    for frames in (15, 25):  # 7.5 and 12.5 frames/s against 10: just within
        c = radar_window(list(range(1, frames + 1)), 2.0)["radar.rate"]
        assert (c["result"], c["value"]) == ("PASS", frames / 2), frames
    slow = radar_window(list(range(1, 15)), 2.0)["radar.rate"]
    assert (slow["result"], slow["value"], slow["unit"]) == ("WARN", 7.0, "frames/s")
    assert slow["expected"] == "10.0 frames/s +- 25%"
    hint_says(slow, "frames arrive at 7.0/s, configured 10.0/s",
              "radar.frame_period_ms matches the chirp configuration's frameCfg",
              "busy USB hub or CPU")
    fast = radar_window(list(range(1, 27)), 2.0)["radar.rate"]
    assert (fast["result"], fast["value"]) == ("WARN", 13.0)
    hint_says(fast, "frames arrive at 13.0/s, configured 10.0/s", "frameCfg")


def test_no_byte_from_the_module_fails_the_rate_and_skips_what_needs_frames() -> None:
    checks = radar_window([], 2.0)
    assert checks["radar.port"]["result"] == "PASS"
    c = checks["radar.rate"]
    assert (c["result"], c["value"]) == ("FAIL", 0.0)
    hint_says(c, "no byte on loop:// for 2.0 s: the module is not sending",
              "check its power", "started (sensorStart)", "cable")
    for name in ("radar.framing", "radar.numbering"):
        assert checks[name]["result"] == "SKIP"
        hint_says(checks[name], "no bytes arrived (radar.rate)")


def test_frame_numbers_that_stop_advancing_fail_the_numbering() -> None:
    # 64 frames, 63 steps: the median is the 32nd smallest. 31 repeats and 32 advances pass;
    # 32 repeats and 31 advances are a module repeating itself.
    mostly_advancing = [1] * 32 + list(range(2, 34))
    c = radar_window(mostly_advancing, 6.4)["radar.numbering"]
    assert (c["result"], c["value"]) == ("PASS", 1)
    mostly_repeating = [1] * 33 + list(range(2, 33))
    c = radar_window(mostly_repeating, 6.4)["radar.numbering"]
    assert (c["result"], c["value"], c["unit"]) == ("FAIL", 0, "per frame")
    hint_says(c, "frame numbers do not advance (median step 0, last [30, 31, 32])",
              "restarts or repeats itself", "power-cycle it and check its supply")
    stuck = radar_window([7] * 20, 2.0)["radar.numbering"]
    assert (stuck["result"], stuck["value"]) == ("FAIL", 0)
    # A module counting backwards (each frame a restart from a lower number) fails too.
    backwards = radar_window(list(range(40, 20, -1)), 2.0)["radar.numbering"]
    assert (backwards["result"], backwards["value"]) == ("FAIL", -1)


def test_one_restart_in_the_window_is_not_a_numbering_fault() -> None:
    """The median ignores one step back (a restart the module came back from, or a bit error
    in one number); frames lost show as the rate."""
    c = radar_window(list(range(1, 41)) + list(range(1, 25)), 6.4)["radar.numbering"]
    assert (c["result"], c["value"]) == ("PASS", 1)


# --- i2c --------------------------------------------------------------------------------


def i2c_reading(kind: str, address: int, chip: RegisterMap,
                shunt_ohm: float | None = None) -> dict[str, Any]:
    """`i2c:part.reading` after one read by the daemon's I2C stage of `chip` (the HAL's fake
    of the part) on a fake bus 1."""
    sensors = SensorsSection(i2c_backend="fake", i2c=[
        I2CDevice(name="part", kind=kind, address=address, shunt_ohm=shunt_ohm)])
    stage = I2CStage(sensors, 0.0, Health(), buses={1: FakeI2CBus({address: chip})})
    stage.PERIOD_S = 0.0
    try:
        stage.step()
        checks = by_name(i2c_checks(stage.selftest_facts()))
    finally:
        stage.close()
    assert checks["i2c:part.answer"]["result"] == "PASS", checks
    return checks["i2c:part.reading"]


def power_monitor(bus_voltage_v: float, current_a: float) -> dict[str, Any]:
    chip = FakeINA219(shunt_ohm=0.1)
    chip.set(bus_voltage_v=bus_voltage_v, current_a=current_a)
    return i2c_reading("ina219", 0x40, chip, shunt_ohm=0.1)


def test_a_power_monitor_outside_0_to_32_v_or_minus_0_1_to_3_5_a_warns() -> None:
    ok = power_monitor(32.0, 1.0)
    assert (ok["result"], ok["value"], ok["unit"]) == ("PASS", 32.0, "V")
    high = power_monitor(32.5, 1.0)
    assert (high["result"], high["value"], high["unit"]) == ("WARN", 32.5, "V")
    assert high["expected"] == "bus_voltage_v 0 .. 32 V"
    hint_says(high, "bus_voltage_v 32.50 V is implausible", "check the part's wiring",
              "shunt_ohm")
    assert power_monitor(12.0, -0.098)["result"] == "PASS"
    reverse = power_monitor(12.0, -0.5)  # the shunt wired the wrong way round
    assert (reverse["result"], reverse["unit"]) == ("WARN", "A")
    assert reverse["value"] == pytest.approx(-0.5, abs=1e-3)
    assert reverse["expected"] == "current_a -0.1 .. 3.5 A"
    hint_says(reverse, "current_a -0.50 A is implausible", "wiring", "shunt_ohm")
    assert power_monitor(12.0, -0.102)["result"] == "WARN"


def test_a_power_monitor_overflow_warns() -> None:
    c = power_monitor(12.0, 5.0)  # 500 mV across 0.1 ohm: beyond the 320 mV range
    assert (c["result"], c["value"]) == ("WARN", "overflow")
    hint_says(c, "ina219 reports an overflow", "beyond the chip's range", "shunt_ohm")


def test_a_temperature_outside_minus_40_to_85_c_warns() -> None:
    for t in (85.0, -40.0):
        c = i2c_reading("tmp102", 0x48, FakeTMP102(t))
        assert (c["result"], c["value"], c["unit"]) == ("PASS", t, "C"), t
    for t in (85.0625, -40.0625):  # one step of the chip (1/16 C) beyond
        c = i2c_reading("tmp102", 0x48, FakeTMP102(t))
        assert (c["result"], c["value"]) == ("WARN", round(t, 3)), t
        assert c["expected"] == "temperature_c -40 .. 85 C"
        hint_says(c, f"temperature_c {t:.2f} C is implausible", "check the part's wiring")


def compass(field_ut: float) -> dict[str, Any]:
    """A level compass pointing along the mast heading (north) in a field of `field_ut`."""
    chip = FakeQMC5883L()
    chip.set(field_t=(field_ut * 1e-6, 0.0, 0.0))
    return i2c_reading("qmc5883l", 0x0D, chip)


def test_a_compass_field_outside_20_to_70_ut_warns() -> None:
    for ut in (20.1, 69.9):
        c = compass(ut)
        assert (c["result"], c["unit"]) == ("PASS", "uT"), ut
        assert c["value"] == pytest.approx(ut, abs=0.01)
    for ut in (19.9, 70.1, 150.0):
        c = compass(ut)
        assert c["result"] == "WARN", ut
        assert c["value"] == pytest.approx(ut, abs=0.01)
        assert c["expected"] == "20 .. 70 uT"
        hint_says(c, f"field {ut:.1f} uT is not the Earth's (20 .. 70 uT)",
                  "steel or a magnet near the compass", "move it clear")


def test_a_magnet_at_the_compass_overflows_it_and_warns() -> None:
    c = compass(300.0)  # beyond what the 16-bit register holds at +-2 G (273 uT)
    assert (c["result"], c["value"]) == ("WARN", "overflow")
    hint_says(c, "qmc5883l reports an overflow", "a magnet at the compass")


# --- broker -----------------------------------------------------------------------------


def link_counters(connected: bool, last_error: str = "", backlog: int = 0) -> dict[str, Any]:
    """The part of `Link.counters()` the check reads."""
    return {"connected": connected, "backlog": backlog, "last_error": last_error}


def test_a_broken_broker_connection_fails_naming_the_url_and_the_last_error() -> None:
    url = "mqtts://broker.example:8883"
    ok = by_name(broker_checks(url, link_counters(True), []))["broker.connection"]
    assert (ok["result"], ok["value"]) == ("PASS", "connected (TLS verified)")
    c = by_name(broker_checks(url, link_counters(
        False, "certificate verify failed: certificate has expired", backlog=37),
        []))["broker.connection"]
    assert (c["result"], c["value"], c["expected"]) == ("FAIL", "not connected", "connected")
    hint_says(c, f"broker {url} not reachable (certificate verify failed: certificate has "
              "expired)", "check the network, DNS, the broker's port and firewall",
              "the CA and the clock", "events wait in the outbox (backlog 37)")
    silent = by_name(broker_checks("mqtt://10.0.0.5:1883", link_counters(False),
                                   []))["broker.connection"]
    assert silent["result"] == "FAIL"
    hint_says(silent, "broker mqtt://10.0.0.5:1883 not reachable (no answer)")


def test_the_broker_connection_skips_with_the_daemon_stopped() -> None:
    c = by_name(broker_checks("mqtt://10.0.0.5:1883", None, []))["broker.connection"]
    assert c["result"] == "SKIP"
    hint_says(c, "the daemon is stopped")


def certificate(path: Path, cn: str, valid_for: dt.timedelta) -> Path:
    """A real self-signed PEM certificate for `cn` that expires `valid_for` from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=400))
            .not_valid_after(now + valid_for).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def cert_check(*files: Path) -> dict[str, Any]:
    return by_name(broker_checks("mqtts://broker.example:8883", link_counters(True),
                                 list(files)))["broker.certificate"]


def test_a_certificate_warns_below_30_days_left_and_fails_once_expired(
        tmp_path: Path) -> None:
    day, hour = dt.timedelta(days=1), dt.timedelta(hours=1)
    ca = certificate(tmp_path / "ca.pem", "edgenode-ca", 3650 * day)
    fine = cert_check(ca, certificate(tmp_path / "node.pem", "node-7", 30 * day + hour))
    assert (fine["result"], fine["unit"]) == ("PASS", "days")
    assert fine["value"] == pytest.approx(30.04, abs=0.01)
    soon = cert_check(ca, certificate(tmp_path / "node.pem", "node-7", 30 * day - hour))
    assert soon["result"] == "WARN" and soon["expected"] == ">= 30 days left"
    assert soon["value"] == pytest.approx(29.96, abs=0.01)
    # The soonest to expire is named, whichever file holds it.
    hint_says(soon, f"certificate 'CN=node-7' in {tmp_path / 'node.pem'} expires in 30.0 "
              "days", "TLS to the broker fails", "renew it")
    last = cert_check(ca, certificate(tmp_path / "node.pem", "node-7", hour))
    assert last["result"] == "WARN" and last["value"] == pytest.approx(0.042, abs=0.001)
    expired = cert_check(certificate(tmp_path / "ca.pem", "edgenode-ca", -3 * day),
                         certificate(tmp_path / "node.pem", "node-7", 300 * day))
    assert (expired["result"], expired["unit"]) == ("FAIL", "days")
    assert expired["value"] == pytest.approx(-3.0, abs=0.01)
    hint_says(expired, f"certificate 'CN=edgenode-ca' in {tmp_path / 'ca.pem'} expired 3.0 "
              "days ago", "TLS to the broker fails", "renew it")
    just = cert_check(certificate(tmp_path / "node.pem", "node-7", -hour))
    assert just["result"] == "FAIL" and just["value"] == pytest.approx(-0.042, abs=0.001)


def test_an_unreadable_certificate_file_fails_naming_it(tmp_path: Path) -> None:
    junk = tmp_path / "node.pem"
    junk.write_text("not a certificate\n")
    for path in (junk, tmp_path / "missing.pem"):
        c = cert_check(path)
        assert (c["result"], c["value"]) == ("FAIL", None), path
        hint_says(c, f"cannot read certificate {path}", "broker.ca_file and broker.cert_file")
    assert by_name(broker_checks("mqtt://x", None, []))["broker.certificate"]["result"] == \
        "SKIP"

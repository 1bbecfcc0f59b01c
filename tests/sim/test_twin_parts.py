"""I2C parts and system facts of the twin, read with the real drivers over the sim backends;
and the node config `edgenode run --sim` gets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgenode.cli.sim import prepare_sim_run
from edgenode.config import load_config
from hal.ports.gpio import open_gpio
from hal.ports.i2c import I2CError, open_i2c
from hal.relay import JammerRelay
from hal.sensors.ina219 import INA219
from hal.sensors.qmc5883l import QMC5883L
from hal.sensors.system import open_system_facts
from hal.sensors.tmp102 import TMP102
from hal.sim.protocol import control
from tests.sim.conftest import write_scenario


def test_jammer_supply_rises_while_radiating_and_compass_reads_the_mast(
        twin_factory, tmp_path: Path) -> None:
    twin = twin_factory(write_scenario(tmp_path / "mast.toml", "[node]\nmast_heading_deg = "
                                       "75.0\n"))
    bus = open_i2c("sim", bus=1, device=twin.socket)
    relay = JammerRelay(open_gpio("sim", device=twin.socket), drive_line=17,
                        heartbeat_line=27, aux_line=22, key_test_line=5, key_operate_line=6)
    try:
        power = INA219(bus, 0x40, shunt_ohm=0.1)
        idle = power.read()
        relay.drive(True)
        for _ in range(10):
            relay.toggle_heartbeat()
            time.sleep(0.02)
        on = power.read()
        relay.drive(False)
        assert idle.bus_voltage_v < 0.5 and abs(idle.current_a) < 0.05
        assert on.bus_voltage_v > 11.0 and on.current_a > 2.0
        assert QMC5883L(bus).read().heading_deg == pytest.approx(75.0, abs=3.0)
        assert 10 < TMP102(bus).read().temperature_c < 40
        control(twin.socket, "fault.start", name="i2c-missing")
        with pytest.raises(I2CError, match="0x40"):
            power.read()
    finally:
        relay.close()
        bus.close()


def test_system_facts_come_from_the_twin(twin_factory) -> None:
    twin = twin_factory()
    facts = open_system_facts("sim", device=twin.socket).read()
    assert facts.clock_synced and facts.throttled == 0
    assert 30 < facts.cpu_temp_c < 70


def test_sim_run_config_validates_and_trusts_a_demo_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config_path, child = prepare_sim_run(Path("one-drone-crossing"), state,
                                         "mqtt://127.0.0.1:1883", 1.0, ["mic-clipping"])
    try:
        config = load_config(config_path)
        assert config.relay.backend == "sim" and config.relay.device == str(
            state / "sim" / "twin.sock")
        assert config.effector.enabled
        (key,) = config.effector.keys
        assert key.demo and key.role == "operator"
        assert (state / "operator.key").read_text().startswith("# edgenode operator key")
        assert config.radar is not None and config.radar.data_port == str(
            state / "sim" / "radar-data")
        assert config.acoustic is not None and config.acoustic.backend == "sim"
        assert config.sensors.i2c_backend == "sim"
        assert control(config.relay.device, "status")["faults"] == ["mic-clipping"]
        # A second run reuses the key pair.
        before = (state / "operator.key").read_bytes()
        child.terminate()
        child.wait(5)
        config_path, child = prepare_sim_run(Path("one-drone-crossing"), state,
                                             "mqtt://127.0.0.1:1883", 1.0, [])
        assert (state / "operator.key").read_bytes() == before
        assert load_config(config_path).effector.keys[0].public_key == key.public_key
    finally:
        child.terminate()
        child.wait(5)

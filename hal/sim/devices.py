"""The twin's I2C parts (chip models of hal/sensors/) and board facts, kept in step with the
scenario: jammer supply, compass, temperature, CPU temperature."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hal.ports.i2c.fake import RegisterMap
from hal.sensors.ina219 import FakeINA219
from hal.sensors.qmc5883l import FakeQMC5883L
from hal.sensors.tmp102 import FakeTMP102


@dataclass(frozen=True)
class PartSpec:
    name: str
    kind: str
    bus: int
    address: int
    shunt_ohm: float | None = None

    def as_config(self) -> dict:
        out = {"name": self.name, "kind": self.kind, "bus": self.bus, "address": self.address}
        if self.shunt_ohm is not None:
            out["shunt_ohm"] = self.shunt_ohm
        return out


# The parts on the simulated board (the same addresses as hardware/configs/pi5-*.toml).
PARTS = (
    PartSpec("jammer-power", "ina219", 1, 0x40, 0.1),
    PartSpec("compass", "qmc5883l", 1, 0x0D),
    PartSpec("enclosure-temp", "tmp102", 1, 0x48),
)

# hardware/relay-board.md: +24 V through K2 and K1, then the INA219's 0.1 ohm shunt (which
# reads up to 3.2 A), then the key switch: OPERATE feeds the jammer, TEST the 3 W test lamp.
SUPPLY_V = 24.0
JAMMER_A = 2.5
LAMP_A = 3.0 / 24.0


class BoardParts:
    def __init__(self, mast_heading_deg: float, ambient_c: float, seed: int):
        self.heading = mast_heading_deg
        # The compass-off-heading fault: the compass reads this much clockwise of the mast.
        self.heading_error_deg = 0.0
        self.ambient_c = ambient_c
        self.rng = np.random.default_rng([seed, 12])
        self.ina = FakeINA219(shunt_ohm=0.1)
        self.compass = FakeQMC5883L()
        self.temp = FakeTMP102()
        self.devices: dict[tuple[int, int], RegisterMap] = {
            (1, 0x40): self.ina, (1, 0x0D): self.compass, (1, 0x48): self.temp}

    def update(self, *, powered: bool, key: str, sim_t: float) -> None:
        """Set the parts' physical values for this instant (called before each transfer).
        `powered`: K1 and K2 both closed."""
        noise = self.rng.normal
        if powered and key in ("test", "operate"):
            current = JAMMER_A if key == "operate" else LAMP_A
            volts = SUPPLY_V - 0.3 * current + noise(0, 0.01)
            self.ina.set(bus_voltage_v=max(volts, 0.0), current_a=current + noise(0, 0.01))
        else:
            self.ina.set(bus_voltage_v=0.0, current_a=0.0)
        # The compass checks the configured mast heading; sensor noise about half a degree.
        self.compass.set_heading(self.heading + self.heading_error_deg + noise(0, 0.5))
        # The enclosure sits in the sun a little above ambient, with a slow daily-ish swing.
        self.temp.set(temperature_c=self.enclosure_c(sim_t))

    def enclosure_c(self, sim_t: float) -> float:
        return self.ambient_c + 8.0 + 2.0 * math.sin(2 * math.pi * sim_t / 3600.0)

    def cpu_temp_c(self, sim_t: float) -> float:
        return round(self.enclosure_c(sim_t) + 22.0 + float(self.rng.normal(0, 0.3)), 1)

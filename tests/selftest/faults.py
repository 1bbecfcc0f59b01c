"""Each twin fault and the check that must say so (docs/selftest.md, "Twin faults"): the
check, its result, and words its hint must carry."""

from __future__ import annotations

from hal.sim.devices import PARTS

I2C_ANSWERS = tuple(f"i2c:{p.name}.answer" for p in PARTS)

# fault -> (checks that must be not PASS, their result, words in the hint)
EXPECTED: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "radar-unplugged": (("radar.port",), "FAIL", ("does not open", "cable")),
    "radar-garbage": (("radar.framing",), "WARN", ("were not frames", "cable")),
    "radar-wrong-baud": (("radar.framing",), "FAIL", ("baud rate", "921600")),
    "mic-dead": (("acoustic.stream",), "FAIL", ("no audio",)),
    "mic-channel-dead": (("acoustic.silent",), "FAIL", ("microphone(s) 5 ", "silent")),
    "mic-clipping": (("acoustic.clipping",), "FAIL", ("clip", "gain")),
    "mic-swapped": (("acoustic.wiring",), "FAIL", ("2 (capture channel 2), 9 (capture "
                                                   "channel 9) appear swapped",)),
    "relay-stuck": (("relay.inputs",), "FAIL", ("K1",)),
    "i2c-missing": (I2C_ANSWERS, "FAIL", ("does not answer", "i2cdetect")),
    "interlock-open": (("relay.key",), "WARN", ("OFF", "jamming impossible until",
                                               "OPERATE")),
    "compass-off-heading": (("i2c:compass.heading",), "WARN", ("mast_heading_deg",)),
}

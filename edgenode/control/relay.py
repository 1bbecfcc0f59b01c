"""Build the relay from its config section, and make it safe from the command line."""

from __future__ import annotations

import logging

from edgenode.config import RelaySection
from hal.ports.gpio import open_gpio
from hal.relay import JammerRelay

log = logging.getLogger(__name__)


def open_relay(section: RelaySection) -> JammerRelay:
    """Reserve the relay board's lines; the drive starts OFF and the heartbeat still."""
    options: dict[str, object] = {}
    if section.backend == "gpiod":
        options["chip_label"] = section.chip_label
    if section.device:
        options["device"] = section.device
    if section.backend == "fake":
        options["inputs"] = {section.key_test_line: section.fake_key_switch == "test",
                             section.key_operate_line: section.fake_key_switch == "operate"}
    backend = open_gpio(section.backend, **options)
    return JammerRelay(
        backend,
        drive_line=section.drive_line,
        heartbeat_line=section.heartbeat_line,
        aux_line=section.aux_line,
        key_test_line=section.key_test_line,
        key_operate_line=section.key_operate_line,
    )


def relay_safe(section: RelaySection) -> bool:
    """Drive the relay OFF and release its lines. Returns whether the aux contact agrees."""
    relay = open_relay(section)
    try:
        relay.drive(False)
        inputs = relay.read()
    finally:
        relay.close()
    if inputs.aux_closed:
        log.error("relay-safe: drive is OFF but the aux contact is still closed: relay stuck on?")
        return False
    log.info("relay-safe: drive OFF, aux contact open, key switch %s", inputs.key.value)
    return True

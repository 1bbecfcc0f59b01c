"""A process holding an Effector on a fake board: signs the commands in a file (one JSON line
each: key file, action, params) once its effector has started, obeys them, says ENGAGED, then
waits to be killed. Signing after the start keeps a slow start on a loaded machine from making
them `issued_before_start`. Usage: engaged_node.py CONFIG_JSON STATE_DIR COMMANDS GPIO_LOG"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from edgenode.config import Config
from edgenode.control import Effector
from edgenode.control.keys import load_key_file
from edgenode.control.operator import build_command, encode
from edgenode.health import Health
from edgenode.link.mqtt import InboundMessage
from hal.ports.gpio.fake import FakeGpio
from hal.relay import JammerRelay


def main() -> None:
    config_path, state_dir, commands, gpio_log = sys.argv[1:5]
    config = Config.model_validate_json(Path(config_path).read_text())
    r = config.relay
    gpio = FakeGpio(inputs={r.key_operate_line: True}, device=gpio_log)
    relay = JammerRelay(gpio, drive_line=r.drive_line, heartbeat_line=r.heartbeat_line,
                        aux_line=r.aux_line, key_test_line=r.key_test_line,
                        key_operate_line=r.key_operate_line)
    effector = Effector(relay, config, Health(), Path(state_dir), publish_audit=lambda _: None,
                        publish_state=lambda _: None, clock_synced=lambda: True)
    effector.start()
    for line in Path(commands).read_text().splitlines():
        spec = json.loads(line)
        envelope = build_command(load_key_file(Path(spec["key"])), config.node.site,
                                 config.node.id, spec["action"], spec["params"])
        result = effector.handle_command(InboundMessage("cmd", encode(envelope), False))
        if result["status"] != "ok":
            print(json.dumps(result), flush=True)
        # The relay coil: the aux contact follows the drive.
        gpio.drive_input(r.aux_line, gpio.level(r.drive_line))
    print(effector.state, flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()

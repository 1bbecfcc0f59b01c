"""The twin's Remote ID air: the scenario's broadcasting drones (targets with `remote_id`)
send their frames, as a receiver would capture them, to the node's `socket` receivers: one
UNIX datagram socket per link type (BLE LL 251, radiotap + 802.11 127). Until the node binds
them the frames are lost, as on the air."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hal.sim.remoteid import Broadcast, Broadcaster
from hal.sim.scenario import Scenario
from hal.sim.world import World

log = logging.getLogger(__name__)
LINKTYPES = {"bluetooth": 251, "wifi_beacon": 127}
TICK_S = 0.1


def broadcasting(scenario: Scenario) -> bool:
    return any(t.remote_id is not None for t in scenario.targets)


def socket_paths(out_dir: Path) -> dict[int, Path]:
    """Link type -> the socket path the node's receiver binds (listed in endpoints.json)."""
    return {251: out_dir / "remoteid-ble.sock", 127: out_dir / "remoteid-wifi.sock"}


class RemoteIdAir:
    def __init__(self, scenario: Scenario, world: World, out_dir: Path,
                 sim_time: Callable[[], float], stop: threading.Event):
        node = scenario.node
        self.world, self.sim_time, self.stop = world, sim_time, stop
        self.paths = socket_paths(out_dir)
        self.tx: dict[str, Broadcaster] = {}
        for k, target in enumerate(t for t in scenario.targets if t.remote_id is not None):
            rid = target.remote_id
            assert rid is not None
            b = Broadcast(rid.uas_id, mode=rid.mode, offset_m=(rid.offset_m[0], rid.offset_m[1]),
                          transport=rid.transport, src=f"60:60:1f:00:{k >> 8:02x}:{k & 255:02x}",
                          operator_id=rid.operator_id,
                          operator_m=(rid.operator_m[0], rid.operator_m[1]))
            self.tx[target.id] = Broadcaster(b, node.latitude_deg, node.longitude_deg,
                                             node.altitude_m)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sent = self.lost = 0

    def run(self) -> None:
        while not self.stop.wait(TICK_S):
            sim_t = self.sim_time()
            for body, pos, _ in self.world.bodies_at(sim_t):
                tx = self.tx.get(body.target.id)
                if tx is None:
                    continue
                for linktype, frame in tx.frames(sim_t, *(float(v) for v in pos),
                                                 wall_t=time.time()):
                    self._send(self.paths[linktype], frame)
        self.sock.close()

    def _send(self, path: Path, frame: bytes) -> None:
        try:
            self.sock.sendto(frame, str(path))
            self.sent += 1
        except OSError:  # no receiver bound (yet): lost, as a broadcast nobody hears
            self.lost += 1

"""System facts of the twin's simulated board (CPU temperature, throttling, clock sync)."""

from __future__ import annotations

from hal.sensors.system import SystemFacts
from hal.sim.protocol import SimClient, SimError


class SimSystemFacts:
    """`device` is the twin's socket path (endpoints.json: socket)."""

    def __init__(self, device: str | None = None):
        if not device:
            raise ValueError("system facts sim backend needs the twin's socket path")
        self.device = device
        self._client: SimClient | None = None

    def read(self) -> SystemFacts:
        """The board's facts now; OSError (SimError) when the twin cannot be reached."""
        if self._client is None:
            self._client = SimClient(self.device, "system", name="system")
        try:
            answer = self._client.request("system.read")
        except SimError:
            self._client.close()
            self._client = None  # reconnect on the next read
            raise
        return SystemFacts(cpu_temp_c=answer["cpu_temp_c"], throttled=answer["throttled"],
                           clock_synced=bool(answer["clock_synced"]))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

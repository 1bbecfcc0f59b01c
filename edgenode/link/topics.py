"""Topic names under `edgenode/<site>/<node>/` (docs/mqtt.md is the contract)."""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "edgenode"

# Topic suffix -> the JSON Schema (edgenode/link/schemas/<name>.json) its payloads follow.
SCHEMA_BY_SUFFIX = {
    "status": "status",
    "health": "health",
    "events": "events",
    "effector": "effector",
    "audit": "audit",
    "cmd": "cmd",
    "cmd/result": "cmd_result",
    "selftest": "selftest",
    "ping": "ping",
}


@dataclass(frozen=True)
class Topics:
    site: str
    node: str

    @property
    def prefix(self) -> str:
        return f"{ROOT}/{self.site}/{self.node}"

    @property
    def client_id(self) -> str:
        # One id per node: two processes with one id kick each other off for ever.
        return f"{ROOT}-{self.site}-{self.node}"

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    @property
    def status(self) -> str:
        return self.topic("status")

    @property
    def events(self) -> str:
        return self.topic("events")

    @property
    def audit(self) -> str:
        return self.topic("audit")

    @property
    def cmd(self) -> str:
        return self.topic("cmd")

    @property
    def ping(self) -> str:
        """The node's pings to itself through the broker (edgenode/link/watch.py)."""
        return self.topic("ping")

    @property
    def cmd_result(self) -> str:
        return self.topic("cmd/result")

    def is_own_response_topic(self, topic: str) -> bool:
        """MQTT 5 response topics are honoured only under `.../cmd/result/`: the node's ACL
        lets it write under its own prefix and nowhere else."""
        return topic.startswith(self.cmd_result + "/") and "+" not in topic and "#" not in topic


def schema_for_topic(topic: str) -> str | None:
    """The schema name for any topic under edgenode/<site>/<node>/, or None if it has none."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != ROOT:
        return None
    suffix = "/".join(parts[3:])
    if suffix.startswith("cmd/result/"):
        suffix = "cmd/result"  # MQTT 5 response topics carry results
    return SCHEMA_BY_SUFFIX.get(suffix)

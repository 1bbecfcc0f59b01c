"""Central's paho client writes what is queued in one send(): the PUBACKs an instance owes
for a burst of events go out together (edgenode/central/client.py)."""

from __future__ import annotations

from typing import Any

from paho.mqtt.client import DISCONNECT, PUBACK, PUBLISH

from edgenode.central.client import SharedAwareClient
from edgenode.link.mqtt import BrokerOptions


class FakeSocket:
    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sends.append(bytes(data))
        return len(data)

    def close(self) -> None:
        pass


def _packet(command: int, data: bytes, qos: int = 1) -> dict[str, Any]:
    return {"command": command, "mid": 1, "qos": qos, "pos": 0, "to_process": len(data),
            "packet": data, "info": None}


def _client_on_fake_socket() -> tuple[Any, FakeSocket]:
    """Central's paho client, its socket replaced by one that records each send()."""
    client = SharedAwareClient(BrokerOptions(url="mqtt://127.0.0.1:1", client_id="c"))
    sock = FakeSocket()
    client._client._sock = sock
    return client._client, sock


def test_queued_acknowledgements_and_qos1_publishes_go_out_in_one_send() -> None:
    paho, sock = _client_on_fake_socket()
    paho._out_packet.extend([_packet(PUBACK, b"a1"), _packet(PUBACK, b"a2"),
                             _packet(PUBLISH, b"p3"), _packet(PUBACK, b"a4")])
    paho._packet_write()
    assert sock.sends == [b"a1a2p3a4"]
    assert not paho.want_write()


def test_packets_paho_acts_on_after_writing_are_written_on_their_own() -> None:
    """A QoS 0 PUBLISH fires on_publish once written, a DISCONNECT closes the socket."""
    paho, sock = _client_on_fake_socket()
    paho._out_packet.extend([_packet(PUBACK, b"a1"), _packet(PUBACK, b"a2"),
                             _packet(PUBLISH, b"q0", qos=0), _packet(PUBACK, b"a3"),
                             _packet(DISCONNECT, b"d")])
    info = type("Info", (), {"_set_as_published": lambda self: None})()
    paho._out_packet[2]["info"] = info
    paho._packet_write()
    assert sock.sends == [b"a1a2", b"q0", b"a3", b"d"]

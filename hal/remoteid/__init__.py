"""Remote ID receivers: Bluetooth and Wi-Fi frames and capture files in, raw Remote ID payloads
(`RemoteIdFrame`: the bytes after the message counter, with where and when they were heard)
out. Knows frame formats (radiotap, 802.11 beacons and NAN, BLE advertising, HCI events, pcap
and pcapng), nothing of ASTM message contents (edgenode.identify decodes those) and nothing of
edgenode. May import the standard library only.

Only the ASTM F3411 carriers are taken: the Wi-Fi vendor element with OUI FA:0B:BC type 0x0D,
NAN service discovery frames for the service "org.opendroneid.remoteid", and Bluetooth service
data with UUID 0xFFFA and application code 0x0D. Other vendors' elements (DJI's OUI 26:37:12,
...) are counted and never handed on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hal.backends import load_backend

TRANSPORTS = ("bluetooth", "wifi_beacon", "wifi_nan")


@dataclass(slots=True)
class RemoteIdFrame:
    """One received Remote ID carrier."""

    t: float  # capture time, s: the file's time stamp, or time.time() when received live
    transport: str  # one of TRANSPORTS
    payload: bytes  # what follows the message counter: one message or a message pack
    counter: int | None = None  # the transmitter's message counter
    src: str | None = None  # transmitter address, "aa:bb:cc:dd:ee:ff", when the frame has one
    rssi_dbm: int | None = None
    index: int = 0  # the frame's position in its capture, or in the receive order
    error: str | None = None  # the carrier itself was cut or damaged (payload not to be believed)
    crc_ok: bool = True  # False: the radio's frame check failed (a sniffer still hands it on)


class ReceiverError(OSError):
    """A receiver cannot be opened or configured; the message names the interface, adapter or
    file and says what to do."""


@runtime_checkable
class RemoteIdReceiver(Protocol):
    """What every backend offers. `read` never blocks longer than its timeout, so the reader
    thread keeps looping (and reporting) while the radio is quiet."""

    name: str
    frames: int  # Remote ID carriers delivered
    records: int  # link-layer frames received (most carry no Remote ID)

    def read(self, timeout_s: float) -> list[RemoteIdFrame]:
        """Carriers received within `timeout_s` (an empty list when none came)."""
        ...

    def close(self) -> None:
        """Stop receiving and release the device; idempotent."""
        ...


_BACKENDS = {
    "wifi-monitor": "hal.remoteid.wifi_monitor:WifiMonitorReceiver",
    "bluez-hci": "hal.remoteid.bluez:BluezHciReceiver",
    "capture": "hal.remoteid.replay:CaptureReceiver",
    "socket": "hal.remoteid.dgram:DatagramReceiver",
    "fake": "hal.remoteid.fake:FakeReceiver",
}


def open_receiver(backend: str, *, device: str, **options: object) -> RemoteIdReceiver:
    """Open the named backend. `device` is the monitor-mode interface (wifi-monitor), the HCI
    adapter ("hci0", bluez-hci), the capture file (capture), a socket path (socket: the twin,
    or a capture helper, sends link-layer frames there) or a label (fake)."""
    receiver: RemoteIdReceiver = load_backend("remote id receiver", _BACKENDS, backend,
                                              ReceiverError)(device=device, **options)
    return receiver

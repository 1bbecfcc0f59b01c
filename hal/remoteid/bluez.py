"""Bluetooth Remote ID through a raw HCI socket on a BlueZ adapter: the controller scans
passively and reports every advertisement; the reports go through hal.remoteid.bluetooth.

Bluetooth 5 long range (coded PHY) needs extended scanning: asked for first, and when the
controller refuses it (a controller without the LE coded PHY does: `btmgmt phy` lists
LECODEDRX where it is there) the receiver says so once and scans legacy advertising only, on
the 1M PHY. Opening needs CAP_NET_RAW and CAP_NET_ADMIN. While the receiver scans, bluetoothd should
not be told to scan the same adapter (hardware/remoteid.md).
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import time

from hal.remoteid import ReceiverError, RemoteIdFrame
from hal.remoteid.linktypes import BLUETOOTH_HCI_H4
from hal.remoteid.live import SocketReceiver

log = logging.getLogger(__name__)

BTPROTO_HCI = 1
SOL_HCI = 0
HCI_FILTER = 2
HCI_COMMAND_PKT, HCI_EVENT_PKT = 0x01, 0x04
EVT_CMD_COMPLETE, EVT_CMD_STATUS, EVT_LE_META = 0x0E, 0x0F, 0x3E


def opcode(ocf: int, ogf: int = 0x08) -> int:
    return (ogf << 10) | ocf


LE_SET_SCAN_PARAMETERS = opcode(0x000B)
LE_SET_SCAN_ENABLE = opcode(0x000C)
LE_SET_EXT_SCAN_PARAMETERS = opcode(0x0041)
LE_SET_EXT_SCAN_ENABLE = opcode(0x0042)
SCAN_INTERVAL = SCAN_WINDOW = 0x0060  # 60 ms, 0.625 ms units: listen all the time
PHY_1M, PHY_CODED = 0x01, 0x04


def command(op: int, params: bytes = b"") -> bytes:
    return struct.pack("<BHB", HCI_COMMAND_PKT, op, len(params)) + params


class BluezHciReceiver(SocketReceiver):
    """Scans on `device` ("hci0"). `sock` hands in an open socket that speaks H4 packets (a
    test's stand-in controller); `coded_phy=False` asks for legacy scanning only."""

    def __init__(self, device: str = "hci0", *, sock: socket.socket | None = None,
                 coded_phy: bool = True, command_timeout_s: float = 2.0) -> None:
        if sock is None:
            sock = _open(device)
        super().__init__(f"bluetooth '{device}'", sock, BLUETOOTH_HCI_H4)
        self.device = device
        self.command_timeout_s = command_timeout_s
        self.extended = False
        self._early: list[bytes] = []  # advertising events that came while we set up
        try:
            self._start(coded_phy)
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------- set-up

    def _start(self, coded_phy: bool) -> None:
        if coded_phy:
            phys = PHY_1M | PHY_CODED
            per_phy = struct.pack("<BHH", 0, SCAN_INTERVAL, SCAN_WINDOW) * 2
            status = self._command(LE_SET_EXT_SCAN_PARAMETERS,
                                   struct.pack("<BBB", 0, 0, phys) + per_phy)
            if status == 0:
                status = self._command(LE_SET_EXT_SCAN_ENABLE, struct.pack("<BBHH", 1, 0, 0, 0))
                if status == 0:
                    self.extended = True
                    return
            log.warning("%s: the controller refuses extended scanning (status 0x%02x): "
                        "legacy advertising only, no Bluetooth 5 long range", self.name, status)
        status = self._command(LE_SET_SCAN_PARAMETERS,
                               struct.pack("<BHHBB", 0, SCAN_INTERVAL, SCAN_WINDOW, 0, 0))
        if status == 0:
            status = self._command(LE_SET_SCAN_ENABLE, b"\x01\x00")
        if status != 0:
            raise ReceiverError(f"{self.name}: the controller refused to scan (HCI status "
                                f"0x{status:02x}); is the adapter up (`hciconfig "
                                f"{self.device} up`) and not scanning for bluetoothd?")

    def _command(self, op: int, params: bytes) -> int:
        """Send one HCI command; its status from Command Complete / Command Status."""
        sock = self._sock
        assert sock is not None
        sock.sendall(command(op, params))
        deadline = time.monotonic() + self.command_timeout_s
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            packet = sock.recv(1024)
            if len(packet) < 3 or packet[0] != HCI_EVENT_PKT:
                continue
            event = packet[1]
            if event == EVT_CMD_COMPLETE and len(packet) >= 7 \
                    and struct.unpack_from("<H", packet, 4)[0] == op:
                return packet[6]
            if event == EVT_CMD_STATUS and len(packet) >= 7 \
                    and struct.unpack_from("<H", packet, 5)[0] == op:
                return packet[3]
            if event == EVT_LE_META:
                self._early.append(packet)
        raise ReceiverError(f"{self.name}: no answer to HCI command 0x{op:04x} within "
                            f"{self.command_timeout_s} s; is the adapter up and not blocked "
                            "(`rfkill list`)?")

    def read(self, timeout_s: float) -> list[RemoteIdFrame]:
        if self._early:
            early, self._early = self._early, []
            out = []
            for packet in early:
                out.extend(self.extractor.extract(self.linktype, packet, self._clock(),
                                                  self.records))
                self.records += 1
            self.frames += len(out)
            return out + super().read(0.0)
        return super().read(timeout_s)

    def _before_close(self, sock: socket.socket) -> None:
        stop = command(LE_SET_EXT_SCAN_ENABLE, struct.pack("<BBHH", 0, 0, 0, 0)) \
            if self.extended else command(LE_SET_SCAN_ENABLE, b"\x00\x00")
        try:
            sock.sendall(stop)
        except OSError as exc:
            log.warning("%s: could not stop scanning: %s", self.name, exc)


def _open(device: str) -> socket.socket:
    if not device.startswith("hci") or not device[3:].isdigit():
        raise ReceiverError(f"bluetooth adapter '{device}': name it hciN (see `hciconfig`)")
    try:
        sock = socket.socket(socket.AF_BLUETOOTH, socket.SOCK_RAW, BTPROTO_HCI)
    except (AttributeError, OSError) as exc:
        raise ReceiverError(f"bluetooth adapter '{device}': no HCI sockets here ({exc}); "
                            "is the kernel's bluetooth module loaded?") from exc
    try:
        sock.bind((int(device[3:]),))
        # events only: LE meta (advertising reports), command complete and status
        event_mask = (1 << EVT_CMD_COMPLETE) | (1 << EVT_CMD_STATUS)
        sock.setsockopt(SOL_HCI, HCI_FILTER, struct.pack(
            "<IIIH", 1 << HCI_EVENT_PKT, event_mask, 1 << (EVT_LE_META - 32), 0))
    except PermissionError:
        sock.close()
        raise ReceiverError(f"bluetooth adapter '{device}': raw HCI needs CAP_NET_RAW and "
                            "CAP_NET_ADMIN (the unit drop-in in docs/remoteid.md grants them; "
                            "or run as root)") \
            from None
    except OSError as exc:
        sock.close()
        raise ReceiverError(f"bluetooth adapter '{device}': cannot open: {exc}; see "
                            "`hciconfig` for the adapters") from exc
    return sock

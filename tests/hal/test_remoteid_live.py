"""Live Remote ID receivers behind one interface: Wi-Fi monitor mode (a raw socket of radiotap
frames), BlueZ HCI (a controller that scans and reports), a capture file, and the fake. The
sockets here are real datagram sockets; only the radio and the controller are stand-ins."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from hal.remoteid import ReceiverError, RemoteIdReceiver, open_receiver
from hal.remoteid.bluez import (
    LE_SET_EXT_SCAN_ENABLE,
    LE_SET_EXT_SCAN_PARAMETERS,
    LE_SET_SCAN_ENABLE,
    LE_SET_SCAN_PARAMETERS,
    BluezHciReceiver,
)
from hal.remoteid.fake import FakeReceiver
from hal.remoteid.linktypes import BLUETOOTH_HCI_H4, IEEE802_11_RADIOTAP
from hal.remoteid.wifi_monitor import WifiMonitorReceiver
from hal.sim import remoteid as tx

DRONE = "60:60:1f:aa:bb:cc"
PACK = tx.pack([tx.basic_id("LIVE00000000001"), tx.location(57.7, 11.97)])


def test_wifi_monitor_receiver_reads_radiotap_frames_from_its_socket() -> None:
    radio, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with radio, WifiMonitorReceiver("wlan1", sock=ours) as rx:
        assert isinstance(rx, RemoteIdReceiver)
        assert rx.read(0.01) == []
        radio.send(tx.radiotap(tx.wifi_beacon(DRONE, 1, PACK)))
        radio.send(b"\x00\x00\x08\x00")  # a cut radiotap header: skipped, counted
        radio.send(tx.radiotap(tx.wifi_nan(DRONE, 2, PACK)))
        frames = []
        deadline = time.monotonic() + 2
        while len(frames) < 2 and time.monotonic() < deadline:
            frames += rx.read(0.2)
        assert [(f.transport, f.counter, f.payload) for f in frames] == [
            ("wifi_beacon", 1, PACK), ("wifi_nan", 2, PACK)]
        assert abs(frames[0].t - time.time()) < 5  # stamped on arrival, wall clock
        assert rx.records == 3 and rx.frames == 2 and rx.extractor.damaged == 1
    rx.close()  # idempotent
    with pytest.raises(ReceiverError, match="read after close"):
        rx.read(0)


def test_wifi_monitor_receiver_names_a_missing_or_managed_interface(tmp_path: Path) -> None:
    with pytest.raises(ReceiverError, match="'wlan9' does not exist"):
        WifiMonitorReceiver("wlan9", sys_net=tmp_path)
    (tmp_path / "wlan0").mkdir()
    (tmp_path / "wlan0" / "type").write_text("1\n")
    with pytest.raises(ReceiverError, match=r"not in monitor mode .* iw dev wlan0 set type"):
        WifiMonitorReceiver("wlan0", sys_net=tmp_path)
    # the real loopback interface of this machine is no monitor interface either
    with pytest.raises(ReceiverError, match="'lo' is not in monitor mode"):
        open_receiver("wifi-monitor", device="lo")


class StandInController:
    """The far end of an HCI socket: answers commands (refusing extended scanning when told
    to) and sends advertising reports."""

    def __init__(self, sock: socket.socket, *, extended: bool, answer: bool = True) -> None:
        self.sock = sock
        self.extended = extended
        self.answer = answer
        self.commands: list[int] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                packet = self.sock.recv(1024)
            except OSError:
                return
            if not packet:
                return
            op = struct.unpack_from("<H", packet, 1)[0]
            self.commands.append(op)
            if not self.answer:
                continue
            refuse = not self.extended and op in (LE_SET_EXT_SCAN_PARAMETERS,
                                                  LE_SET_EXT_SCAN_ENABLE)
            status = 0x01 if refuse else 0x00  # 0x01: unknown HCI command
            try:
                self.sock.send(struct.pack("<BBBBHB", 0x04, 0x0E, 4, 1, op, status))
            except OSError:
                return


@pytest.mark.parametrize("extended", [True, False], ids=["bt5-controller", "bt4-controller"])
def test_bluez_receiver_scans_and_turns_reports_into_frames(extended: bool) -> None:
    ctrl_end, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    controller = StandInController(ctrl_end, extended=extended)
    rx = BluezHciReceiver("hci0", sock=ours)
    assert rx.extended is extended
    want = [LE_SET_EXT_SCAN_PARAMETERS, LE_SET_EXT_SCAN_ENABLE] if extended else \
        [LE_SET_EXT_SCAN_PARAMETERS, LE_SET_SCAN_PARAMETERS, LE_SET_SCAN_ENABLE]
    assert controller.commands == want
    ad = tx.ble_service_data(5, tx.basic_id("BLE0000000000001"))
    ctrl_end.send(tx.hci_le_adv_report(DRONE, ad, rssi=-70))
    frames = rx.read(1.0)
    assert [(f.transport, f.src, f.counter, f.rssi_dbm) for f in frames] == [
        ("bluetooth", DRONE, 5, -70)]
    rx.close()
    controller.thread.join(2)
    stop = LE_SET_EXT_SCAN_ENABLE if extended else LE_SET_SCAN_ENABLE
    assert controller.commands[-1] == stop  # scanning stopped on close
    ctrl_end.close()


def test_bluez_receiver_gives_up_on_a_controller_that_never_answers() -> None:
    ctrl_end, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    StandInController(ctrl_end, extended=True, answer=False)
    with pytest.raises(ReceiverError, match="no answer to HCI command 0x2041"):
        BluezHciReceiver("hci0", sock=ours, command_timeout_s=0.2)
    ctrl_end.close()


def test_bluez_receiver_names_a_bad_or_absent_adapter() -> None:
    with pytest.raises(ReceiverError, match="name it hciN"):
        BluezHciReceiver("bluetooth0")
    try:
        rx = open_receiver("bluez-hci", device="hci7", command_timeout_s=0.5)
    except ReceiverError as exc:
        assert "hci7" in str(exc)
    else:  # a machine with eight adapters: fine, it opened
        rx.close()


def test_capture_and_fake_receivers_deliver_through_the_same_interface(tmp_path: Path) -> None:
    path = tx.write_pcap(tmp_path / "r.pcap", IEEE802_11_RADIOTAP,
                         [(10.0 + 0.1 * n, tx.radiotap(tx.wifi_beacon(DRONE, n, PACK)))
                          for n in range(5)])
    rx = open_receiver("capture", device=str(path))
    got = []
    while not getattr(rx, "eof", False):
        got += rx.read(0.1)
    assert [f.counter for f in got] == [0, 1, 2, 3, 4] and rx.frames == 5
    assert rx.read(0.0) == []
    (tmp_path / "notes.txt").write_text("not a capture")
    with pytest.raises(ReceiverError, match=r"notes\.txt.*not a pcap"):
        open_receiver("capture", device=str(tmp_path / "notes.txt"))

    fake = open_receiver("fake", device="bench")
    assert isinstance(fake, FakeReceiver)
    fake.inject_raw(IEEE802_11_RADIOTAP, tx.radiotap(tx.wifi_beacon(DRONE, 9, PACK)), t=1.0)
    (frame,) = fake.read(0.1)
    assert frame.counter == 9 and fake.history[0][1] is frame
    with pytest.raises(ReceiverError, match="'nope' unknown"):
        open_receiver("nope", device="x")


def test_capture_receiver_in_real_time_keeps_the_capture_pace(tmp_path: Path) -> None:
    path = tx.write_pcap(tmp_path / "paced.pcap", IEEE802_11_RADIOTAP,
                         [(100.0 + 0.15 * n, tx.radiotap(tx.wifi_beacon(DRONE, n, PACK)))
                          for n in range(3)])
    rx = open_receiver("capture", device=str(path), realtime=True)
    started = time.monotonic()
    got = []
    while len(got) < 3 and time.monotonic() - started < 5:
        got += rx.read(0.05)
    assert len(got) == 3
    assert time.monotonic() - started >= 0.25  # 0.3 s of capture, not all at once


def test_socket_receiver_takes_frames_from_the_twin_or_a_capture_helper(tmp_path: Path) -> None:
    path = tmp_path / "rid.sock"
    path.write_text("not a socket")
    with pytest.raises(ReceiverError, match="exists and is not a socket"):
        open_receiver("socket", device=str(path))
    path.unlink()
    with pytest.raises(ReceiverError, match="link type 1 not read"):
        open_receiver("socket", device=str(path), linktype=1)
    rx = open_receiver("socket", device=str(path), linktype=BLUETOOTH_HCI_H4)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for event in tx.hci_le_ext_adv_reports(DRONE, tx.ble_service_data(3, PACK)):
            sender.sendto(event, str(path))
        frames = rx.read(1.0)
    assert [(f.src, f.counter, f.payload) for f in frames] == [(DRONE, 3, PACK)]
    rx.close()
    assert not path.exists()  # the socket file goes with the receiver
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as crashed:  # one left behind
        crashed.bind(str(path))
    assert path.exists()
    again = open_receiver("socket", device=str(path))  # is replaced
    again.close()


"""The ADS-B input against a real decoder: Debian's dump1090-mutability replays the real
recording (resampled to the 2.4 MS/s it expects) with its network outputs on loopback. The
node's input (AdsbFeed on the Beast port), `edgenode adsb --connect beast://...` and the SBS
reader must list what dump1090's own SBS output says: the same aircraft, altitudes and
positions (1e-4 deg)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from hal.adsb.feed import AdsbFeed
from hal.adsb.sbs import parse_line
from hal.adsb.types import AircraftUpdate
from tests.conftest import EDGENODE, SHARED_DATA, free_port, terminate

RECORDING = SHARED_DATA / "adsb" / "modes1.bin"
DUMP1090 = shutil.which("dump1090-mutability")
pytestmark = pytest.mark.skipif(DUMP1090 is None or not RECORDING.exists(),
                                reason="needs dump1090-mutability (make apt) and shared data")


def resample_to_24(src: Path, dst: Path) -> None:
    """2.0 -> 2.4 MS/s (6/5) on the uint8 I/Q, written back as uint8 interleaved."""
    raw = np.fromfile(src, dtype=np.uint8).astype(np.float32) - 127.5
    i, q = resample_poly(raw[0::2], 6, 5), resample_poly(raw[1::2], 6, 5)
    out = np.empty(2 * len(i), dtype=np.float32)
    out[0::2], out[1::2] = i, q
    np.clip(np.rint(out + 127.5), 0, 255).astype(np.uint8).tofile(dst)


class Collector(threading.Thread):
    """Reads one TCP output until dump1090 closes it."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.data = b""

    def run(self) -> None:
        while chunk := self.sock.recv(65536):
            self.data += chunk


class FeedReader(threading.Thread):
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.feed = AdsbFeed(url, name="test-adsb")
        self.updates: list[AircraftUpdate] = []
        self.stop = threading.Event()
        while not self.feed.connected:
            self.feed.poll(0.05)

    def run(self) -> None:
        while not self.stop.is_set() and self.feed.connected:
            self.updates += self.feed.poll(0.1)


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("dump1090")
    iq = tmp / "modes1_2400k.bin"
    resample_to_24(RECORDING, iq)
    ports = {name: free_port() for name in ("bo", "sbs", "ro", "ri", "bi")}
    proc = subprocess.Popen(
        [DUMP1090, "--ifile", "-", "--net", "--net-bind-address", "127.0.0.1",
         "--net-bo-port", str(ports["bo"]), "--net-sbs-port", str(ports["sbs"]),
         "--net-ro-port", str(ports["ro"]), "--net-ri-port", str(ports["ri"]),
         "--net-bi-port", str(ports["bi"]), "--net-heartbeat", "0", "--quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:  # dump1090 listens once it has opened its ports
            try:
                sbs = Collector(ports["sbs"])
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        cli = subprocess.Popen(
            [*EDGENODE, "adsb", "--connect", f"beast://127.0.0.1:{ports['bo']}",
             "--seconds", "5", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        assert cli.stderr is not None
        assert "connected" in cli.stderr.readline()
        node = FeedReader(f"beast://127.0.0.1:{ports['bo']}")
        node_sbs = FeedReader(f"sbs://127.0.0.1:{ports['sbs']}")
        for t in (sbs, node, node_sbs):
            t.start()
        time.sleep(0.2)
        assert proc.stdin is not None
        proc.stdin.write(iq.read_bytes())
        proc.stdin.close()
        assert proc.wait(20) == 0
        sbs.join(10)
        node.join(10)
        node_sbs.join(10)
        out, err = cli.communicate(timeout=20)
    finally:
        terminate(proc)
    lines = sbs.data.decode().splitlines()
    return {"sbs": [u for u in (parse_line(x, 0.0) for x in lines) if u is not None],
            "sbs_lines": lines, "node": node, "node_sbs": node_sbs.updates,
            "cli": [json.loads(x) for x in out.splitlines()], "cli_err": err}


def positions(updates: list[AircraftUpdate]) -> list[tuple[float, float] | None]:
    return [None if u.lat is None else (u.lat, u.lon) for u in updates]


def test_dump1090_decodes_the_recording(replay: dict) -> None:
    sbs = replay["sbs"]
    assert len(sbs) > 200
    assert {u.icao for u in sbs} == {"4D2023"}
    assert sum(u.lat is not None for u in sbs) > 70


def test_node_input_lists_what_dump1090_says(replay: dict) -> None:
    ours, theirs = replay["node"].updates, replay["sbs"]
    # One update per message dump1090 turned into data, in the same order.
    assert [u.icao for u in ours] == [u.icao for u in theirs]
    assert [u.alt_ft for u in ours] == [u.alt_ft for u in theirs]
    assert [u.callsign for u in ours if u.callsign] == [u.callsign for u in theirs
                                                        if u.callsign]
    assert [u.squawk for u in ours if u.squawk] == [u.squawk for u in theirs if u.squawk]
    both = extra = 0
    for mine, ref in zip(positions(ours), positions(theirs), strict=True):
        if ref is not None:
            assert mine is not None, "dump1090 has a position the node input missed"
            assert abs(mine[0] - ref[0]) <= 1e-4 and abs(mine[1] - ref[1]) <= 1e-4, (mine, ref)
            both += 1
        elif mine is not None:
            extra += 1
    assert both > 70
    # dump1090 drops a few positions on its own speed check (the recording is spliced from
    # many captures, so its clock runs far faster than the aircraft): at most those.
    assert extra <= 10
    speeds = [(u.speed_kt, round(u.track_deg or 0, 1)) for u in ours if u.speed_kt]
    ref_speeds = [(u.speed_kt, round(u.track_deg or 0, 1)) for u in theirs if u.speed_kt]
    assert [s for s, _ in speeds] == pytest.approx([s for s, _ in ref_speeds], abs=1)
    assert replay["node"].feed.stats().get("crc_fail", 0) == 0


def test_sbs_reader_takes_dump1090s_sbs_port(replay: dict) -> None:
    ours, theirs = replay["node_sbs"], replay["sbs"]
    assert [(u.icao, u.alt_ft) for u in ours] == [(u.icao, u.alt_ft) for u in theirs]
    held = 0
    for mine, ref in zip(positions(ours), positions(theirs), strict=True):
        if mine is None and ref is not None:
            held += 1  # a jump (the recording is spliced) held until the next agrees
        else:
            assert mine == ref
    assert held <= 3


def test_adsb_command_lists_the_same_aircraft(replay: dict) -> None:
    lines, ref = replay["cli"], replay["sbs"]
    assert lines, replay["cli_err"]
    assert set(lines[0]) == {"t", "icao", "lat", "lon", "alt_ft", "callsign", "speed_kt",
                             "track_deg"}
    assert {x["icao"] for x in lines} == {u.icao for u in ref}
    ref_pos = [p for p in positions(ref) if p is not None]
    seen = {(x["lat"], x["lon"]) for x in lines if x["lat"] is not None}
    # (positions dump1090 dropped and the node kept are checked in the node test above)
    missed = [p for p in ref_pos
              if not any(abs(p[0] - a) <= 1e-4 and abs(p[1] - b) <= 1e-4 for a, b in seen)]
    assert not missed
    assert {x["alt_ft"] for x in lines} == {u.alt_ft for u in ref if u.alt_ft is not None}
    assert lines[-1]["callsign"] == next(u.callsign for u in reversed(ref) if u.callsign)

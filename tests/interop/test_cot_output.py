"""The CoT output stage on real sockets: rate limits, a bounded queue, reconnects, a stale
marker at stop; a TAK server (taky) over TCP and TLS with a client certificate; multicast."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edgenode.config.models import CotSection
from edgenode.health import Health
from edgenode.interop.cot import CotOutput
from tests.conftest import ROOT, free_port
from tests.interop.cotschema import validate, when
from tests.interop.taky import Listener, Taky
from tests.link.certs import make_pki
from tests.link.helpers import make_config, track_state

OBJECT = "01J9ZT3W6D8K4M2N5P7Q9R1S3T"


def output(tmp_path: Path, url: str, **cot) -> CotOutput:
    config = make_config(tmp_path, "mqtt://127.0.0.1:1")
    config = config.model_copy(update={"cot": CotSection(url=url, **cot)})
    return CotOutput(config, Health(), lambda: ("online", "SAFE"))


def event(kind: str, t: float = 0.0, operator: tuple[float, float] | None = None) -> dict:
    """A track event; with `operator` its Remote ID gave the operator's (lat, lon)."""
    state = track_state(OBJECT, t)
    if operator is not None:
        state["identity"] = {"uas_id": "SURVEY-0001", "operator_id": "SWE-OP-SURVEY",
                             "verdict": "trusted", "allowed": False, "operator_position": {
                                 "latitude_deg": operator[0], "longitude_deg": operator[1]}}
    return {"type": kind, "object_id": OBJECT, "before": None if kind == "new" else state,
            "after": None if kind == "end" else state}


def udp_receiver() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.3)
    return sock, sock.getsockname()[1]


def receive_all(sock: socket.socket, seconds: float) -> list[ET.Element]:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        event = ET.fromstring(data)
        validate(event)
        out.append(event)
    return out


def sent(tmp_path, max_rate_hz: float, feed, seconds: float):
    """What a CoT output to a UDP port sends while `feed(cot)` hands it track events; and
    the output (stopped)."""
    sock, port = udp_receiver()
    cot = output(tmp_path, f"udp://127.0.0.1:{port}", max_rate_hz=max_rate_hz)
    cot.start()
    try:
        feed(cot)
        return receive_all(sock, seconds), cot
    finally:
        cot.stop()
        sock.close()


def burst(**fields):
    """A track's feed: new, 20 updates 10 ms apart, end."""
    def feed(cot) -> None:
        cot.on_event(event("new", **fields))
        for k in range(20):
            cot.on_event(event("update", k * 0.01, **fields))
        cot.on_event(event("end", **fields))
    return feed


def test_a_track_is_sent_at_most_max_rate_hz_but_its_start_and_end_always_go(tmp_path):
    got, cot = sent(tmp_path, 1.0, burst(), 1.5)
    tracks = [e for e in got if e.get("uid").endswith(OBJECT)]
    assert len(tracks) == 2, [e.get("type") for e in got]  # the new one and the end
    end = tracks[-1]
    assert when(end.get("stale")) <= when(end.get("start")) + 0.001  # off the map now
    assert cot.snapshot()["rate_limited"] == 20
    assert any(e.get("type") == "a-f-G-E-S" for e in got)  # the node's marker


def pilots(events: list[ET.Element]) -> list[ET.Element]:
    return [e for e in events if e.get("uid").endswith(OBJECT + "-pilot")]


def test_a_pilot_marker_is_rate_limited_with_its_track_and_ends_with_it(tmp_path):
    got, _ = sent(tmp_path, 1.0, burst(operator=(51.5, -0.12)), 1.5)
    markers = pilots(got)
    assert [e.get("type") for e in markers] == ["a-u-G", "a-u-G"]  # the new one and the end
    assert when(markers[0].get("stale")) > when(markers[0].get("start"))
    assert when(markers[-1].get("stale")) <= when(markers[-1].get("start")) + 0.001


def test_a_pilot_no_longer_broadcast_leaves_the_map(tmp_path):
    def feed(cot) -> None:
        cot.on_event(event("new", operator=(51.5, -0.12)))
        time.sleep(0.15)  # past 1/max_rate_hz
        cot.on_event(event("update", 0.15))  # the identity no longer gives the operator
        time.sleep(0.15)
        cot.on_event(event("update", 0.3))

    got, _ = sent(tmp_path, 10.0, feed, 1.0)
    assert len([e for e in got if e.get("uid").endswith(OBJECT)]) == 3  # all three went
    markers = pilots(got)
    assert len(markers) == 2, [e.get("uid") for e in got]  # shown, then withdrawn once
    gone = markers[-1]
    assert float(gone.find("point").get("lat")) == pytest.approx(51.5)
    assert when(gone.get("stale")) <= when(gone.get("start")) + 0.001


def test_a_gone_server_never_blocks_the_producer_and_the_queue_stays_bounded(tmp_path):
    cot = output(tmp_path, f"tcp://127.0.0.1:{free_port()}", queue_events=50,
                 max_rate_hz=10)
    cot.start()
    try:
        for k in range(500):
            cot.on_event(event("new" if k % 2 == 0 else "end"))
        snap = cot.snapshot()
    finally:
        cot.stop()
    assert snap["queued"] <= 50
    assert snap["dropped"] >= 450
    assert not snap["connected"]
    assert cot.health.state == "degraded" and "refused" in cot.health.reason


@pytest.fixture
def taky(tmp_path):
    server = Taky(tmp_path / "taky").start()
    yield server
    server.stop()


def test_events_reach_an_atak_client_through_taky_and_the_marker_goes_stale_at_stop(
        tmp_path, taky):
    listener = Listener(taky)
    cot = output(tmp_path, taky.url)
    cot.start()
    try:
        cot.on_event(event("new"))
        drone = listener.wait_for(lambda e: e.get("uid", "").endswith(OBJECT))
        marker = listener.wait_for(lambda e: e.get("type") == "a-f-G-E-S")
        validate(drone)
        assert drone.get("type") == "a-u-A-M-H-Q"
        assert when(marker.get("stale")) > time.time()
    finally:
        cot.stop()
    stopped = time.time()
    gone = listener.wait_for(lambda e: e.get("type") == "a-f-G-E-S"
                             and "stopped" in e.find("detail/remarks").text)
    assert when(gone.get("stale")) <= stopped + 1.0
    listener.close()


def test_tls_with_the_node_client_certificate(tmp_path):
    pki = make_pki(tmp_path / "pki")
    server = Taky(tmp_path / "taky-tls", pki=pki).start()
    try:
        listener = Listener(server)
        cot = output(tmp_path, server.url, ca_file=pki.ca, cert_file=pki.client_cert,
                     key_file=pki.client_key)
        cot.start()
        try:
            cot.on_event(event("new"))
            listener.wait_for(lambda e: e.get("uid", "").endswith(OBJECT))
        finally:
            cot.stop()
        listener.close()
        # Without a client certificate the server refuses the node.
        stranger = output(tmp_path, server.url, ca_file=pki.ca, cert_file=tmp_path / "none.crt",
                          key_file=tmp_path / "none.key")
        stranger.start()
        time.sleep(0.5)
        assert not stranger.snapshot()["connected"]
        stranger.stop()
    finally:
        server.stop()


def test_events_resume_after_the_server_was_gone(tmp_path, taky):
    cot = output(tmp_path, taky.url, reconnect_min_s=0.2, reconnect_max_s=1.0, max_rate_hz=10)
    cot.start()
    try:
        listener = Listener(taky)
        cot.on_event(event("new"))
        listener.wait_for(lambda e: e.get("uid", "").endswith(OBJECT))
        listener.close()
        taky.stop()
        for k in range(30):  # events while the server is gone: sends fail, nothing blocks
            cot.on_event(event("update", k))
            time.sleep(0.05)
        taky.start()
        listener = Listener(taky)
        resumed = time.monotonic()
        cot.on_event(event("new"))
        listener.wait_for(lambda e: e.get("uid", "").endswith(OBJECT), timeout_s=5)
        assert time.monotonic() - resumed < 3.0  # within reconnect_max_s plus a send
        assert cot.snapshot()["reconnects"] >= 2
        listener.close()
    finally:
        cot.stop()


MULTICAST_SCRIPT = """
import socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
from tests.interop.test_cot_output import multicast_round_trip
multicast_round_trip()
"""


def multicast_round_trip() -> None:
    """Inside a private network namespace (only its own loopback): listen on the group and
    send through CotOutput's multicast transport."""
    import struct
    import tempfile

    subprocess.run(["ip", "link", "set", "lo", "up", "multicast", "on"], check=True)
    subprocess.run(["ip", "route", "add", "224.0.0.0/4", "dev", "lo"], check=True)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rx.bind(("239.2.3.1", 6969))
    rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                  struct.pack("4s4s", socket.inet_aton("239.2.3.1"),
                              socket.inet_aton("127.0.0.1")))
    rx.settimeout(0.3)
    cot = output(Path(tempfile.mkdtemp()), "udp://239.2.3.1:6969",
                 multicast_interface="127.0.0.1")
    cot.start()
    try:
        cot.on_event(event("new"))
        got = receive_all(rx, 1.5)
    finally:
        cot.stop()
    uids = {e.get("uid") for e in got}
    assert any(u.endswith(OBJECT) for u in uids), uids
    print("multicast ok", sorted(uids))


def test_multicast_reaches_a_listener_on_the_group():
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) for a private network")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private network namespace here: {probe.stderr.decode()}")
    proc = subprocess.run(["unshare", "--net", sys.executable, "-c", MULTICAST_SCRIPT,
                           str(ROOT)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "multicast ok" in proc.stdout

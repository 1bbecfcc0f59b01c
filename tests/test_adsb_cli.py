"""`edgenode adsb`: the technician's receiver check, against the twin's sky on loopback."""

from __future__ import annotations

import subprocess

from hal.sim.adsb import BeastSky, airliner_far, helicopter_crossing
from tests.conftest import EDGENODE, ROOT, free_port


def test_adsb_lists_the_aircraft_it_hears() -> None:
    sky = BeastSky(52.0, 13.0, [helicopter_crossing(0.0), airliner_far(0.0)], rate_hz=10,
                   ident_every_s=0.5).start()
    try:
        proc = subprocess.run([*EDGENODE, "adsb", "--connect", f"beast://127.0.0.1:{sky.port}",
                               "--seconds", "2"], cwd=ROOT, capture_output=True, text=True,
                              timeout=30)
    finally:
        sky.stop()
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()
    assert len(rows) == 2
    assert rows[0].startswith("3C6DD1  CHX24") and "alt 975 ft" in rows[0]  # 300 m in 25 ft steps
    assert rows[1].startswith("4CA7B2  EIN12K") and "450 kt" in rows[1]
    assert "2 aircraft from beast://127.0.0.1:" in proc.stderr
    assert "0 CRC failures" in proc.stderr


def test_adsb_says_when_nothing_answers() -> None:
    proc = subprocess.run([*EDGENODE, "adsb", "--connect", f"sbs://127.0.0.1:{free_port()}",
                           "--seconds", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1
    assert "last error: cannot connect to sbs://127.0.0.1:" in proc.stderr
    bad = subprocess.run([*EDGENODE, "adsb", "--connect", "http://x:1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "beast://HOST:PORT" in bad.stderr

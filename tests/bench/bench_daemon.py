"""The daemon on the twin for 60 s at real speed: its CPU share and peak RSS, twice.

1. the default scenario (one-drone-crossing), radar, microphones, relay and MQTT;
2. every optional part on: the helicopter-crossing sky (ADS-B, so the airspace rules) with
   the drone broadcasting Remote ID (the receivers and identity guard), Cursor-on-Target to a
   UDP port on loopback, a SAPIENT peer (tests/interop/sapient_peer.py) taking
   registration, status and detection reports, and the acoustic second-drone path
   (`--second-drone`). (The status page is its own process.)

Targets on the dev machine, each run: <= 25 % of one core, <= 150 MB peak RSS, so a Raspberry
Pi's budget stays in view. The twin runs in its own process and is not counted.
Run: .venv/bin/python tests/bench/bench_daemon.py [seconds]
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.targets import Targets  # noqa: E402
from tests.conftest import EDGENODE, Mosquitto  # noqa: E402

CPU_TARGET_PCT = 25.0
RSS_TARGET_MB = 150.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def all_parts_scenario(tmp: Path) -> Path:
    """helicopter-crossing with its drone broadcasting Remote ID."""
    text = (ROOT / "hardware/scenarios/helicopter-crossing.toml").read_text()
    path = tmp / "all-parts.toml"
    # The drone is the file's last table: the key lands in it.
    path.write_text(text.rstrip() + '\nremote_id = { uas_id = "BENCH-0001" }\n')
    return path


def measure(label: str, scenario: str, extra: list[str], seconds: float,
            targets: Targets) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "broker").start()
        state = Path(tmp) / "state"
        if scenario == "all-parts":
            scenario = str(all_parts_scenario(Path(tmp)))
        proc = subprocess.Popen([*EDGENODE, "run", "--sim", scenario, "--broker", broker.url,
                                 "--state-dir", str(state), *extra], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not (state / "control.sock").exists():
                if proc.poll() is not None:
                    targets.at_most(f"{label}: the daemon exited early with", 1, 0, "error")
                    return
                time.sleep(0.2)
            time.sleep(3)  # start-up (imports, twin, first config upload) is not steady state
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
            broker.stop()
    share = 100 * (cpu1 - cpu0) / (t1 - t0)
    print(f"daemon, {label}, {t1 - t0:.0f} s at real speed:")
    cpu_ok = targets.at_most(f"{label}: daemon CPU share", share, CPU_TARGET_PCT,
                             "% of one core")
    rss_ok = targets.at_most(f"{label}: daemon peak RSS", rss, RSS_TARGET_MB, "MB")
    print(f"  CPU share  {share:6.1f} % of one core   (target <= {CPU_TARGET_PCT:.0f} %) {cpu_ok}")
    print(f"  peak RSS   {rss:6.1f} MB               (target <= {RSS_TARGET_MB:.0f} MB) {rss_ok}")


def main() -> int:
    from tests.interop.sapient_peer import SapientPeer

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    targets = Targets("bench_daemon")
    measure("one-drone-crossing", "one-drone-crossing", [], seconds, targets)
    peer = SapientPeer()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as cot_sink:
            cot_sink.bind(("127.0.0.1", 0))  # receives and drops what the node sends
            measure("every part on (ADS-B, Remote ID, CoT, SAPIENT, second drone)", "all-parts",
                    ["--cot", f"udp://127.0.0.1:{cot_sink.getsockname()[1]}",
                     "--sapient", f"127.0.0.1:{peer.port}", "--second-drone"], seconds,
                    targets)
        print(f"  SAPIENT peer received {len(peer.received)} messages")
    finally:
        peer.close()
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())

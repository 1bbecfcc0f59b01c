"""The daemon on the default scenario for 60 s at real speed: its CPU share and peak RSS.

Targets on the dev machine: <= 25 % of one core, <= 150 MB, so a Raspberry Pi's budget stays
in view. The twin runs in its own process and is not counted.
Run: .venv/bin/python tests/bench/bench_daemon.py [seconds]
"""

from __future__ import annotations

import os
import signal
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


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "broker").start()
        state = Path(tmp) / "state"
        proc = subprocess.Popen([*EDGENODE, "run", "--sim", "one-drone-crossing", "--broker",
                                 broker.url, "--state-dir", str(state)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not (state / "control.sock").exists():
                if proc.poll() is not None:
                    print("bench_daemon: the daemon exited early", file=sys.stderr)
                    return 1
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
    print(f"daemon on one-drone-crossing, {t1 - t0:.0f} s at real speed:")
    targets = Targets("bench_daemon")
    cpu_ok = targets.at_most("daemon CPU share", share, CPU_TARGET_PCT, "% of one core")
    rss_ok = targets.at_most("daemon peak RSS", rss, RSS_TARGET_MB, "MB")
    print(f"  CPU share  {share:6.1f} % of one core   (target <= {CPU_TARGET_PCT:.0f} %) {cpu_ok}")
    print(f"  peak RSS   {rss:6.1f} MB               (target <= {RSS_TARGET_MB:.0f} MB) {rss_ok}")
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())

"""The status page's cost: the daemon's CPU share on the twin with no browser, then with three
browsers streaming the live page (server-sent events), and the companion process's own share.

Target (issue: status page): three browsers raise the daemon's share by <= 3 percentage points
of one core. Exits 1 when missed.
Run: .venv/bin/python tests/bench/bench_status_page.py [seconds per phase]
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgenode.web.auth import hash_password  # noqa: E402
from tests.bench.bench_daemon import cpu_seconds  # noqa: E402
from tests.bench.targets import Targets  # noqa: E402
from tests.conftest import Mosquitto, free_port, wait_for_port  # noqa: E402
from tests.simdaemon import SimTwin  # noqa: E402

TARGET_PP = 3.0


def stream(port: int, stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/api/stream")
    response = conn.getresponse()
    while not stop.is_set():
        response.fp.readline()
    conn.close()


def share(pid: int, seconds: float) -> float:
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp)).start()
        port = free_port()
        twin = SimTwin("one-drone-crossing", Path(tmp) / "state", broker, extra={"status_page": {
            "enabled": True, "port": port, "password_hash": hash_password("bench-password")}})
        daemon = twin.daemon()
        stop = threading.Event()
        try:
            daemon.status()
            wait_for_port(port, timeout_s=20)
            page = int(subprocess.run(["pgrep", "-f", "-P", str(daemon.proc.pid), "status-page"],
                                      capture_output=True, text=True).stdout.split()[0])
            time.sleep(3)
            idle = share(daemon.proc.pid, seconds)
            readers = [threading.Thread(target=stream, args=(port, stop), daemon=True)
                       for _ in range(3)]
            for reader in readers:
                reader.start()
            time.sleep(2)
            page0, t0 = cpu_seconds(page), time.monotonic()
            busy = share(daemon.proc.pid, seconds)
            page_share = 100 * (cpu_seconds(page) - page0) / (time.monotonic() - t0)
        finally:
            stop.set()
            daemon.stop()
            twin.stop()
            broker.stop()
    rise = busy - idle
    targets = Targets("bench_status_page")
    verdict = targets.at_most("daemon CPU rise with three browsers", rise, TARGET_PP, "pp")
    print(f"status page, {seconds:.0f} s per phase on one-drone-crossing:")
    print(f"  daemon CPU, no browser      {idle:6.1f} % of one core")
    print(f"  daemon CPU, three browsers  {busy:6.1f} %  (rise {rise:+.1f} pp, target <= "
          f"{TARGET_PP:.0f} pp): {verdict}")
    print(f"  status page process         {page_share:6.1f} %")
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())

"""A tiny daemon stand-in for the crash tests: a real process publishing through Link.

    python -m tests.link.publisher --config C --state-dir D --count N --rate R

Prints `<session> <seq>` once each event is committed (flushed) to the outbox, `drained` once the
outbox is empty, then waits; SIGTERM stops the link gracefully.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from edgenode.config import load_config
from edgenode.health import Health
from edgenode.link import Link
from tests.link.helpers import track_event


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link = Link(load_config(args.config), args.state_dir, Health(), version="0.0-test",
                capabilities=["radar"], config_digest="sha256:test")
    link.start()
    object_id = None
    for i in range(args.count):
        kind = "new" if i % 50 == 0 else "update"
        event = track_event(kind, object_id if kind == "update" else None, updates=i % 50 + 1)
        object_id = event["object_id"]
        link.publish_event(event)
        assert link.flush(), "outbox commit timed out"
        print(f"{link.session} {i}", flush=True)
        if stop.wait(1.0 / args.rate):
            break
    while not stop.is_set() and link.outbox.backlog:
        time.sleep(0.02)
    print("drained", flush=True)
    stop.wait()
    link.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`edgenode adsb`: the technician's check of the ADS-B receiver: connect to its Beast or SBS
port and print the aircraft it hears (one JSON line per aircraft update with --json)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from edgenode.identify.airspace import AirspacePicture, Site
from hal.adsb.feed import AdsbFeed, parse_url


def cmd_adsb(args: argparse.Namespace) -> int:
    try:
        parse_url(args.connect)
    except ValueError as exc:
        print(f"adsb: {exc}", file=sys.stderr)
        return 2
    feed = AdsbFeed(args.connect, name="adsb")
    # The site does not matter here: the picture only merges what each aircraft said.
    picture = AirspacePicture(Site(0.0, 0.0, 0.0), stale_s=max(60.0, args.seconds))
    deadline = time.monotonic() + args.seconds
    said_connected = False
    try:
        while time.monotonic() < deadline:
            updates = feed.poll(min(0.5, max(0.01, deadline - time.monotonic())))
            if feed.connected and not said_connected:
                print(f"adsb: connected to {feed.url}", file=sys.stderr, flush=True)
                said_connected = True
            for update in updates:
                ac = picture.apply(update)
                if args.json:
                    print(json.dumps(ac.line()), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        feed.close()
    stats = feed.stats()
    if not args.json:
        for ac in sorted(picture.aircraft(), key=lambda a: a.icao):
            print(_row(ac.line()))
    print(f"adsb: {len(picture)} aircraft from {feed.url}; {stats.get('messages', 0)} messages, "
          f"{stats.get('crc_fail', 0)} CRC failures, {stats.get('garbage_bytes', 0)} garbage "
          f"bytes, {stats.get('position_held', 0)} positions held"
          + (f"; last error: {feed.last_error}" if feed.last_error else ""), file=sys.stderr)
    if feed.counters["connects"] == 0:
        return 1
    return 0


def _row(line: dict[str, Any]) -> str:
    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)
    return (f"{line['icao']}  {line['callsign'] or '-':<8}  lat {f(line['lat'], '.5f')}  "
            f"lon {f(line['lon'], '.5f')}  alt {f(line['alt_ft'], '.0f')} ft  "
            f"{f(line['speed_kt'], '.0f')} kt  track {f(line['track_deg'], '.1f')}")


def register(add: Any) -> None:
    p = add("adsb", cmd_adsb, "list the aircraft an ADS-B receiver hears (Beast or SBS port)")
    p.add_argument("--connect", required=True, metavar="URL",
                   help="beast://HOST:PORT (dump1090/readsb port 30005) or sbs://HOST:PORT "
                        "(port 30003)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to listen (default 10)")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per aircraft update: t, icao, lat, lon, alt_ft, "
                        "callsign, speed_kt, track_deg (null where not yet known)")

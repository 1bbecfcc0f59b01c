"""Mode S / ADS-B messages -> AircraftUpdate, decoded by pyModeS.

Trust rules: an extended squitter (DF17/18) counts only with a valid CRC; a CRC failure is
counted and dropped. Replies whose address is only recoverable from the parity (DF0/4/5/16/20/
21) count only for an aircraft heard in a valid squitter within `known_s`, as dump1090 does.
Airborne positions come from an even/odd CPR pair at most `pair_s` apart (the newer frame's
zone), then from one frame relative to the last trusted position; every position passes the
PositionGate (no 50 km jumps until consistent).
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict

import pyModeS
from pyModeS.position import airborne_position_pair, airborne_position_with_ref

from hal.adsb.plausible import PositionGate
from hal.adsb.types import AircraftUpdate

log = logging.getLogger(__name__)

# DO-260B emergency/priority status codes (BDS 6,1 subtype 1).
EMERGENCY = {1: "general", 2: "lifeguard", 3: "minimum_fuel", 4: "no_communications",
             5: "unlawful_interference", 6: "downed_aircraft", 7: "reserved"}
SQUAWK_EMERGENCY = {"7500": "unlawful_interference", "7600": "no_communications",
                    "7700": "general"}
_PARITY_DFS = frozenset({0, 4, 5, 16, 20, 21})


class ModeSDecoder:
    """One per feed (not thread-safe: the feed's reader thread owns it)."""

    def __init__(self, *, pair_s: float = 10.0, local_s: float = 30.0, known_s: float = 60.0,
                 max_aircraft: int = 2000, gate: PositionGate | None = None):
        self.pair_s, self.local_s, self.known_s = pair_s, local_s, known_s
        self.max_aircraft = max_aircraft
        self.gate = gate or PositionGate(max_aircraft=max_aircraft)
        self.counters: Counter[str] = Counter()
        self._known: OrderedDict[str, float] = OrderedDict()  # icao -> last valid squitter
        # icao -> {0: (t, lat_cpr, lon_cpr), 1: (...), "ref": (lat, lon, t)}
        self._cpr: dict[str, dict[object, tuple]] = {}

    def decode(self, message: bytes, t: float) -> AircraftUpdate | None:
        """The update this message carries, or None (not trusted, or nothing of use)."""
        self.counters["messages"] += 1
        try:
            d = pyModeS.decode(message.hex())
        except Exception:
            self.counters["undecodable"] += 1
            return None
        df, icao = d.get("df"), d.get("icao")
        if not icao:
            self.counters["undecodable"] += 1
            return None
        icao = icao.upper()
        if df in (17, 18):
            if d.get("crc_valid") is not True:
                self.counters["crc_fail"] += 1
                return None
            self._remember(icao, t)
        elif df == 11:
            if d.get("crc_valid") is False:
                self.counters["crc_fail"] += 1
            return None  # all-call reply: the address only, no data
        elif df in _PARITY_DFS:
            seen = self._known.get(icao)
            if seen is None or t - seen > self.known_s:
                self.counters["unknown_address"] += 1
                return None
        else:
            self.counters["unsupported"] += 1
            return None
        self.counters["accepted"] += 1
        return self._update(d, icao, t)

    def _remember(self, icao: str, t: float) -> None:
        self._known[icao] = t
        self._known.move_to_end(icao)
        while len(self._known) > self.max_aircraft:
            old, _ = self._known.popitem(last=False)
            self._cpr.pop(old, None)
            self.gate.forget(old)

    def _update(self, d: dict, icao: str, t: float) -> AircraftUpdate | None:
        fields: dict[str, object] = {}
        alt = d.get("altitude")
        if alt is not None:
            fields["alt_ft"] = float(alt)
        if d.get("callsign"):
            fields["callsign"] = str(d["callsign"]).strip("_ #").strip() or None
        if d.get("squawk"):
            fields["squawk"] = str(d["squawk"])
            if fields["squawk"] in SQUAWK_EMERGENCY:
                fields["emergency"] = SQUAWK_EMERGENCY[str(fields["squawk"])]
        state = d.get("emergency_state")
        if state:
            fields["emergency"] = EMERGENCY.get(int(state), "reserved")
        if d.get("df") in (17, 18):
            if d.get("bds") == "0,9":
                for src, dst in (("groundspeed", "speed_kt"), ("track", "track_deg"),
                                 ("vertical_rate", "vrate_fpm")):
                    if d.get(src) is not None:
                        fields[dst] = float(d[src])
            elif d.get("bds") == "0,5" and "cpr_format" in d:
                fields["on_ground"] = False
                pos = self._position(icao, int(d["cpr_format"]), int(d["cpr_lat"]),
                                     int(d["cpr_lon"]), t)
                if pos is not None:
                    fields["lat"], fields["lon"] = pos
            elif d.get("bds") == "0,6":
                fields["on_ground"] = True
        if not fields:
            return None
        return AircraftUpdate(t=t, icao=icao, **fields)  # type: ignore[arg-type]

    def _position(self, icao: str, fmt: int, lat_cpr: int, lon_cpr: int,
                  t: float) -> tuple[float, float] | None:
        cpr = self._cpr.setdefault(icao, {})
        cpr[fmt] = (t, lat_cpr, lon_cpr)
        other = cpr.get(1 - fmt)
        pos = None
        if other is not None and t - other[0] <= self.pair_s:
            even, odd = (cpr[0], cpr[1])
            pos = airborne_position_pair(even[1], even[2], odd[1], odd[2],
                                         even_is_newer=fmt == 0)
            if pos is None:
                self.counters["cpr_zone_mismatch"] += 1
        if pos is not None and self.gate.check(icao, pos[0], pos[1], t):
            return self._trusted(cpr, pos, t)
        # No pair, or a pair the gate holds (one frame of it may be a phantom): this frame
        # alone, relative to the last trusted position, as dump1090 does.
        ref = cpr.get("ref")
        if ref is None or t - ref[2] > self.local_s:
            if pos is not None:
                self.counters["position_held"] += 1
            return None
        local = airborne_position_with_ref(fmt, lat_cpr, lon_cpr, ref[0], ref[1])
        if not self.gate.check(icao, local[0], local[1], t):
            self.counters["position_held"] += 1
            return None
        self.counters["local_positions"] += 1
        return self._trusted(cpr, local, t)

    def _trusted(self, cpr: dict, pos: tuple[float, float], t: float) -> tuple[float, float]:
        cpr["ref"] = (pos[0], pos[1], t)
        self.counters["positions"] += 1
        return pos

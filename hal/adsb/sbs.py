"""SBS / BaseStation text (dump1090/readsb port 30003 style): one CSV line per message,
`MSG,<type>,...` with 22 fields. The receiver has decoded it already (positions included), so
only the gate in the feed judges it further."""

from __future__ import annotations

import math

from hal.adsb.types import AircraftUpdate


class SbsError(ValueError):
    """A line that is not a BaseStation MSG record; the message says which field."""


def _num(fields: list[str], i: int, name: str) -> float | None:
    text = fields[i].strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise SbsError(f"sbs: field {i + 1} ({name}) is not a number: {text[:20]!r}") from None
    if not math.isfinite(value):
        raise SbsError(f"sbs: field {i + 1} ({name}) is not finite")
    return value


def _flag(text: str) -> bool:
    return text.strip() not in ("", "0")


def parse_line(line: str, t: float) -> AircraftUpdate | None:
    """The update in one line, None for a record that carries no aircraft data (SEL, ID,
    AIR, STA, CLK lines; MSG,8 all-call replies)."""
    fields = line.rstrip("\r\n").split(",")
    if fields[0] != "MSG":
        if fields[0] in ("SEL", "ID", "AIR", "STA", "CLK"):
            return None
        raise SbsError(f"sbs: record type {fields[0][:10]!r} is not MSG/SEL/ID/AIR/STA/CLK")
    if len(fields) < 22:
        raise SbsError(f"sbs: {len(fields)} fields, a MSG record has 22")
    icao = fields[4].strip().upper().lstrip("~")
    if len(icao) != 6 or any(c not in "0123456789ABCDEF" for c in icao):
        raise SbsError(f"sbs: field 5 (hex ident) {fields[4][:10]!r} is not a 24-bit address")
    lat, lon = _num(fields, 14, "latitude"), _num(fields, 15, "longitude")
    if (lat is None) != (lon is None) or (lat is not None and not (
            -90 <= lat <= 90 and -180 <= lon <= 180)):  # type: ignore[operator]
        raise SbsError(f"sbs: latitude/longitude {fields[14]!r},{fields[15]!r} out of range")
    squawk = fields[17].strip() or None
    emergency = None
    if _flag(fields[19]):
        emergency = {"7500": "unlawful_interference", "7600": "no_communications"}.get(
            squawk or "", "general")
    update = AircraftUpdate(
        t=t, icao=icao, lat=lat, lon=lon, alt_ft=_num(fields, 11, "altitude"),
        callsign=fields[10].strip() or None, speed_kt=_num(fields, 12, "ground speed"),
        track_deg=_num(fields, 13, "track"), vrate_fpm=_num(fields, 16, "vertical rate"),
        squawk=squawk, emergency=emergency,
        on_ground=_flag(fields[21]) if fields[21].strip() else None)
    if all(getattr(update, f) is None for f in ("lat", "alt_ft", "callsign", "speed_kt",
                                                "track_deg", "vrate_fpm", "squawk")):
        return None
    return update

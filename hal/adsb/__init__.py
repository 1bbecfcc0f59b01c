"""A local ADS-B receiver's output (dump1090 / readsb over TCP) -> decoded aircraft updates.

`beast` frames the Beast binary stream (port 30005 style), `sbs` parses BaseStation text
(port 30003 style), `modes` decodes Mode S / ADS-B with pyModeS (CPR pairs, altitude, velocity,
callsign, squawk, emergency; CRC failures counted and dropped), `feed` reads either format from a
TCP connection (or the fake backend) with reconnect and backoff. Part of hal: imports nothing of
edgenode, knows nothing of the airspace rules.
"""

from hal.adsb.types import AircraftUpdate

__all__ = ["AircraftUpdate"]

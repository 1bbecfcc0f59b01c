"""Who is out there, and may we jam towards them: Remote ID decoding, the identity store and
honesty verdicts; the airspace picture (manned aircraft heard on ADS-B), the no-jam geometry,
and the airspace rules an engagement must pass.

Pure: no I/O, no threads of its own. Imports neither hal.ports nor paho; it takes decoded
frames and aircraft updates (hal.remoteid, hal.adsb.AircraftUpdate or anything with the same
fields) and config models.
"""

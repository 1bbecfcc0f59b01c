"""Who is out there, and may we jam towards them: the airspace picture (manned aircraft heard
on ADS-B), the no-jam geometry, and the airspace rules an engagement must pass.

Pure: no I/O, no threads of its own. Imports neither hal.ports nor paho; it takes decoded
aircraft updates (hal.adsb.AircraftUpdate or anything with the same fields) and config models.
"""

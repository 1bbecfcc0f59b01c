"""pure identification: Remote ID decoding, identity store and honesty verdicts, the airspace
picture; no I/O imports"""

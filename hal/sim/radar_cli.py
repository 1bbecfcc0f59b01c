"""A TI mmWave demo CLI port, for the twin and for tests: answers like the SDK 3.x CLI task.

For each line it echoes the text, then answers `Done`, `Error -1` (for commands in `reject`)
or `'<cmd>' is not recognized as a CLI command`, then writes the `mmwDemo:/>` prompt. `%`
comment lines get `Skipped`, as the real CLI answers them.
"""

from __future__ import annotations

import os
import select
import threading

PROMPT = b"mmwDemo:/>"

# The commands the SDK 3.x out-of-box demo registers (mss_main / cli.c, mmWave extension).
KNOWN_COMMANDS = frozenset({
    "sensorStart", "sensorStop", "flushCfg", "dfeDataOutputMode", "channelCfg", "adcCfg",
    "adcbufCfg", "profileCfg", "chirpCfg", "frameCfg", "advFrameCfg", "subFrameCfg", "lowPower",
    "guiMonitor", "cfarCfg", "multiObjBeamForming", "calibDcRangeSig", "clutterRemoval",
    "aoaFovCfg", "cfarFovCfg", "compRangeBiasAndRxChanPhase", "measureRangeBiasAndRxChanPhase",
    "extendedMaxVelocity", "CQRxSatMonitor", "CQSigImgMonitor", "analogMonitor", "lvdsStreamCfg",
    "bpmCfg", "calibData", "configDataPort", "queryDemoStatus", "version", "help",
})


def _answer(line: str, reject: frozenset[str] | set[str]) -> bytes:
    if line.startswith("%"):
        return b"Skipped\r\n"
    words = line.split()
    if not words:
        return b""
    if line in reject or words[0] in reject:
        return b"Error -1\r\n"
    if words[0] not in KNOWN_COMMANDS:
        return f"'{words[0]}' is not recognized as a CLI command\r\n".encode()
    return b"Done\r\n"


def serve_ti_cli(fd: int, stop: threading.Event, reject: frozenset[str] | set[str] = frozenset()
                 ) -> None:
    """Answer CLI lines on `fd` (e.g. a pty master) until `stop` is set or the fd closes.

    A line is rejected (`Error -1`) when its command word or its whole text is in `reject`.
    """
    pending = bytearray()
    os.write(fd, PROMPT)
    while not stop.is_set():
        try:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            chunk = os.read(fd, 1024)
        except OSError:
            return
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            raw, _, rest = pending.partition(b"\n")
            pending[:] = rest
            line = raw.decode("ascii", errors="replace").strip()
            try:
                os.write(fd, raw.rstrip(b"\r") + b"\r\n" + _answer(line, reject) + PROMPT)
            except OSError:
                return

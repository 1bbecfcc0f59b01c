"""TI mmWave out-of-box demo: configuration upload over the CLI port (115200 baud).

The demo's CLI task (ti/utils/cli, SDK 3.x) echoes each line, runs it and answers `Done`,
`Error <code>` (sometimes after lines of its own explaining why) or
`'<cmd>' is not recognized as a CLI command`, then prints the prompt `mmwDemo:/>` and waits
for the next line. We send one line at a time and read up to the prompt, so a rejected line
is caught where it happened and named (file, line number, text, the radar's answer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hal.ports.serial import SerialPort

log = logging.getLogger(__name__)

PROMPT = b"mmwDemo:/>"
CLI_BAUD = 115200
# sensorStart runs the RF calibration first; the others answer within milliseconds.
SLOW_COMMANDS = {"sensorStart": 5.0, "sensorStop": 3.0, "flushCfg": 3.0}


class CliError(RuntimeError):
    """A configuration line the radar rejected or did not answer; says which and why."""

    def __init__(self, message: str, *, source: str, line_number: int, line: str, reply: str):
        super().__init__(message)
        self.source, self.line_number, self.line, self.reply = source, line_number, line, reply


@dataclass(frozen=True)
class CliReply:
    line_number: int
    line: str
    reply: str  # what the radar said after its echo, prompt removed


def config_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command) for each line the radar must see: `%` comments and blanks go."""
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("%"):
            out.append((number, line))
    return out


def _answer(line: str, raw: bytes) -> tuple[bool, str]:
    """(accepted, the radar's words) from everything it sent before the prompt."""
    text = raw.decode("ascii", errors="replace")
    lines = [part.strip() for part in text.replace("\r", "\n").split("\n")]
    lines = [part for part in lines if part]
    if lines and lines[0] == line:
        lines = lines[1:]  # the CLI's echo of what we typed
    reply = " | ".join(lines)
    rejected = any(part.startswith("Error") or "not recognized as a CLI command" in part
                   for part in lines)
    return (not rejected and "Done" in lines), reply


class TiCli:
    """The radar's CLI port. `send` one line, or `upload` a whole .cfg."""

    def __init__(self, port: SerialPort, *, line_timeout_s: float = 1.0) -> None:
        self.port = port
        self.line_timeout_s = line_timeout_s

    def _read_to_prompt(self, timeout_s: float, *, want_answer: bool = True
                        ) -> tuple[bytes, bool]:
        """What the radar sent before its prompt; a stale prompt with nothing before it (left
        over from before we spoke) does not end the wait when an answer is expected."""
        deadline = time.monotonic() + timeout_s
        raw = bytearray()
        while time.monotonic() < deadline:
            raw += self.port.read(256)
            if raw.rstrip().endswith(PROMPT):
                body = bytes(raw[: raw.rstrip().rfind(PROMPT)]).replace(PROMPT, b"").strip()
                if body or not want_answer:
                    return body, True
        return bytes(raw).replace(PROMPT, b"").strip(), False

    def sync(self, timeout_s: float = 1.0) -> bool:
        """Send an empty line and wait for the prompt, discarding any banner or old output."""
        self.port.reset_input()
        self.port.write(b"\n")
        return self._read_to_prompt(timeout_s, want_answer=False)[1]

    def send(self, line: str, *, line_number: int = 0, source: str = "cli") -> CliReply:
        """Send one command; CliError if it is rejected, not recognized or not answered."""
        command = line.split()[0] if line.split() else ""
        timeout_s = max(self.line_timeout_s, SLOW_COMMANDS.get(command, 0.0))
        self.port.write(line.encode("ascii") + b"\n")
        raw, prompted = self._read_to_prompt(timeout_s)
        accepted, reply = _answer(line, raw)
        where = f"{self.port.name}: {source} line {line_number} '{line}'"
        if not prompted:
            raise CliError(f"{where}: no '{PROMPT.decode()}' prompt within {timeout_s:.1f} s "
                           f"(got {reply!r}); check the CLI port path and that the demo is "
                           f"running", source=source, line_number=line_number, line=line,
                           reply=reply)
        if not accepted:
            raise CliError(f"{where} rejected by the radar: {reply or 'no answer'}",
                           source=source, line_number=line_number, line=line, reply=reply)
        log.debug("%s: %s line %d '%s': %s", self.port.name, source, line_number, line, reply)
        return CliReply(line_number, line, reply)

    def upload(self, lines: Iterable[tuple[int, str]], *, source: str = "cfg") -> list[CliReply]:
        """Send every (line number, command) in order; stop at the first rejected line."""
        replies = [self.send(line, line_number=number, source=source) for number, line in lines]
        log.info("%s: %s uploaded (%d commands)", self.port.name, source, len(replies))
        return replies


def upload_config(port: SerialPort, cfg: str | Path | Iterable[str], *,
                  line_timeout_s: float = 1.0, sync: bool = True,
                  source: str | None = None) -> list[CliReply]:
    """Upload a chirp configuration through `port`; CliError naming the first bad line.

    `cfg` is the .cfg file's path, or its lines (e.g. `path.read_text().splitlines()`); `%`
    comments and blank lines are skipped, line numbers count every line.
    """
    if isinstance(cfg, str | Path):
        path = Path(cfg)
        text, name = path.read_text(encoding="ascii"), str(path)
    else:
        text, name = "\n".join(cfg), "chirp config"
    cli = TiCli(port, line_timeout_s=line_timeout_s)
    if sync:
        cli.sync()
    return cli.upload(config_lines(text), source=source or name)

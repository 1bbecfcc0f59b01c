"""A real TAK server (taky) on a free loopback port, and a client that listens as ATAK would."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import free_port, terminate, wait_for_port
from tests.link.certs import Pki

SHIM = Path(__file__).resolve().parent / "taky_shim"


class Taky:
    """`python -m taky.cot` with its own config and root directory under `workdir`."""

    def __init__(self, workdir: Path, *, pki: Pki | None = None, port: int | None = None):
        self.workdir, self.pki = workdir, pki
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "taky.conf"
        lines = ["[taky]", "hostname = localhost", "node_id = EDGENODE-TEST",
                 "bind_ip = 127.0.0.1", f"root_dir = {workdir}",
                 "[cot_server]", f"port = {self.port}", "[dp_server]",
                 f"upload_path = {workdir / 'dp'}", "[ssl]"]
        if pki is None:
            lines.append("enabled = false")
        else:
            lines += ["enabled = true", "client_cert_required = true", f"ca = {pki.ca}",
                      f"cert = {pki.server_cert}", f"key = {pki.server_key}",
                      f"cert_db = {workdir / 'cert-db.txt'}"]
        self.config.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'tls' if self.pki else 'tcp'}://127.0.0.1:{self.port}"

    def start(self) -> Taky:
        log = (self.workdir / "taky.log").open("ab")
        # taky imports pkg_resources, which setuptools 81+ no longer ships: a shim stands in.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(SHIM), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        self.proc = subprocess.Popen([sys.executable, "-m", "taky.cot", "-c", str(self.config)],
                                     cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                     env=env)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None

    def log_text(self) -> str:
        return (self.workdir / "taky.log").read_text(errors="replace")[-3000:]


class Listener:
    """A TAK client that only listens: every event the server routes to it, parsed."""

    def __init__(self, server: Taky):
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        if server.pki is not None:
            context = ssl.create_default_context(cafile=str(server.pki.ca))
            context.load_cert_chain(str(server.pki.client_cert), str(server.pki.client_key))
            raw = context.wrap_socket(raw, server_hostname="localhost")
        raw.settimeout(0.2)
        self.sock = raw
        self.events: list[tuple[float, ET.Element]] = []
        self._buffer = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except OSError:
                return
            if not data:
                return
            self._buffer += data
            while b"</event>" in self._buffer:
                text, self._buffer = self._buffer.split(b"</event>", 1)
                start = text.find(b"<event")
                if start >= 0:
                    self.events.append((time.time(), ET.fromstring(text[start:] + b"</event>")))

    def wait_for(self, predicate, timeout_s: float = 15.0) -> ET.Element:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for _, event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            time.sleep(0.05)
        got = [f"{e.get('type')} {e.get('uid')}" for _, e in self.events][-10:]
        raise AssertionError(f"no matching CoT event in {timeout_s} s; got {got}")

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)

"""Shared fixtures: a real Mosquitto on a free loopback port, the shared recordings, ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
EDGENODE = [sys.executable, "-m", "edgenode"]


def pytest_configure(config: pytest.Config) -> None:
    """Where PYTHONDONTWRITEBYTECODE is set (container images do), each of the hundreds of
    `python -m edgenode ...` children a run starts (daemons, twins, `ctl`) compiled edgenode
    and hal from source again: about 0.4 s of CPU each. The children write their bytecode
    outside the tree instead (PYTHONPYCACHEPREFIX), which keeps the tree as clean as the
    variable asked; xdist's workers inherit it."""
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and "PYTHONPYCACHEPREFIX" not in os.environ:
        del os.environ["PYTHONDONTWRITEBYTECODE"]
        os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir())
                                                / "edgenode-tests-pycache")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s} s")


def terminate(proc: subprocess.Popen, timeout_s: float = 5) -> None:
    """SIGTERM, then SIGKILL if the process has not gone within `timeout_s`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if not found:
        pytest.fail("mosquitto is not installed: run `make test`, which installs it")
    return found


def mosquitto_version() -> tuple[int, ...]:
    """(2, 0, 11) from `mosquitto -h`'s first line."""
    out = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True).stdout
    return tuple(int(n) for n in out.split("version", 1)[1].split()[0].split("."))


class Mosquitto:
    """A private broker. `extra` lines go into its config (TLS listeners, ACLs...).

    Shares its test interface with tests/brokers.py's RabbitMq: `url`, `port`,
    `mqtt_version` (the highest it speaks), `take_down`/`bring_back` (an outage) and
    `freeze`/`thaw` (a broker that hangs with its connections open)."""

    mqtt_version = "5"

    def __init__(self, workdir: Path, port: int | None = None, extra: str = "",
                 persistent: bool = False, verbose: bool = True):
        """`persistent`: sessions and queued messages survive a stop/start (saved on stop).
        `verbose` (-v) logs every packet: what a test reads when it fails, but at hundreds
        of messages a second (the benches) a cost of its own."""
        self.verbose = verbose
        self.workdir = workdir
        self.port = port or free_port()
        self.extra = extra
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"mosquitto-{self.port}.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        # As root (CI), Mosquitto 2 would drop to its own user and lose the test files.
        user = "user root\n" if os.geteuid() == 0 else ""
        listener = "" if "listener" in self.extra else (
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        persistence = (f"persistence true\npersistence_location {self.workdir}/\n"
                       if self.persistent else "persistence false\n")
        conf.write_text(f"{listener}{persistence}{user}{self.extra}\n")
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf),
                                      *(["-v"] if self.verbose else [])],
                                     stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            tail = self.log_path.read_text()[-2000:]
            raise RuntimeError(f"mosquitto did not start: {tail}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        self.proc = None

    def take_down(self) -> None:
        self.stop()

    def bring_back(self) -> None:
        self.start()

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh broker for one test; stop/start it to simulate an outage."""
    broker = Mosquitto(tmp_path / "broker").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the tests that only need a broker to be there."""
    broker = Mosquitto(tmp_path_factory.mktemp("shared-broker")).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One RabbitMQ (MQTT 3.1.1 plugin, tests/brokers.py) for the whole session: it takes
    10-40 s to start."""
    from tests.brokers import RabbitMq, rabbitmq_available  # it imports this module

    if not rabbitmq_available():
        pytest.fail("rabbitmq-server is not installed: run `make setup`, which installs it")
    broker = RabbitMq(tmp_path_factory.mktemp("rabbitmq")).start()
    yield broker
    broker.stop()


# RabbitMQ takes 10-40 s to start: its runs go to `make test-long` (make test: Mosquitto).
@pytest.fixture(params=["mosquitto", pytest.param("rabbitmq", marks=pytest.mark.long)])
def any_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A broker with Mosquitto's test interface (`url`, `port`, `mqtt_version`, `take_down`,
    `bring_back`, `freeze`, `thaw`): a fresh Mosquitto (MQTT 5, sessions kept across an
    outage) per test, or the session's RabbitMQ (MQTT 3.1.1). A test of an MQTT 5 feature
    calls tests.brokers.needs_mqtt5 first."""
    if request.param == "rabbitmq":
        rabbitmq = request.getfixturevalue("rabbitmq")
        yield rabbitmq
        rabbitmq.recover()
        return
    # Unbounded queues: a persistent recorder must get every event replayed after an outage.
    broker = Mosquitto(tmp_path / "any-broker", persistent=True,
                       extra="max_queued_messages 0\n").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; tests using it skip, saying why, where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"development recordings not found at {SHARED_DATA}")
    return SHARED_DATA

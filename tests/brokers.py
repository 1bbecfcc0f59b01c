"""A second broker for the tests: RabbitMQ with its MQTT plugin (Debian's rabbitmq-server),
run as a private subprocess on loopback ports, like the Mosquitto fixture. Debian 12 ships
RabbitMQ 3.10: MQTT 3.1.1 only (MQTT 5, and so shared subscriptions, came in 3.13).

The link's tests can take it the same way later: a fixture parametrized over
`Mosquitto` and `RabbitMq`, both with `.url`, `.start()` and `.stop()`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import free_port, terminate, wait_for_port

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
START_TIMEOUT_S = 120.0  # Erlang boots slowly: ~10 s idle, ~40 s on a loaded 2-core box


def rabbitmq_available() -> bool:
    return os.path.exists(RABBITMQ_SERVER) and shutil.which("erl") is not None


class RabbitMq:
    mqtt_version = "3.1.1"

    def __init__(self, workdir: Path, epmd_port: int | None = None,
                 cookie_home: Path | None = None):
        """Two brokers with one `epmd_port` and `cookie_home` (the Erlang cookie's home) can
        form a cluster (`join`)."""
        self.workdir = workdir
        self.port = free_port()
        self.amqp_port, self.dist_port = free_port(), free_port()
        self.epmd_port = epmd_port or free_port()
        self.home = cookie_home or workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "rabbitmq.out"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> RabbitMq:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\nmqtt.default_user = guest\n"
            "mqtt.default_pass = guest\nloopback_users = none\n")
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        env = {**os.environ,
               "RABBITMQ_NODENAME": f"edgetest{self.port}@localhost",
               "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
               "RABBITMQ_NODE_PORT": str(self.amqp_port),
               "RABBITMQ_DIST_PORT": str(self.dist_port),
               "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(self.epmd_port),
               "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
               "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
               "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
               "RABBITMQ_PID_FILE": str(self.workdir / "pid"),
               "HOME": str(self.home)}
        self.env = env
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen([RABBITMQ_SERVER], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(self.port, START_TIMEOUT_S)
        except TimeoutError:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"rabbitmq did not start: {tail}") from None
        return self

    @property
    def nodename(self) -> str:
        return f"edgetest{self.port}@localhost"

    def ctl(self, *args: str) -> str:
        out = subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", self.nodename, *args],
                             env=self.env, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.nodename}: "
                               f"{out.stderr.strip()[-500:]}")
        return out.stdout

    def join(self, other: RabbitMq) -> None:
        """Make this broker a cluster member of `other` (same epmd port and cookie home)."""
        self.ctl("stop_app")
        self.ctl("join_cluster", other.nodename)
        self.ctl("start_app")
        wait_for_port(self.port, START_TIMEOUT_S)

    def stop(self) -> None:
        if self.proc is not None:
            # rabbitmq-server is a shell wrapper around beam and epmd: end its whole group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 15)
            terminate(self.proc, 30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            # erl started epmd as a daemon on our private port: ask it to leave
            epmd = shutil.which("epmd") or "/usr/lib/erlang/erts-13.1.5/bin/epmd"
            subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"],
                           capture_output=True, check=False)
        self.proc = None

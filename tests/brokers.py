"""A second broker for the tests: RabbitMQ with its MQTT plugin (Debian's rabbitmq-server),
run as a private subprocess on loopback ports, like the Mosquitto fixture. Debian 12 ships
RabbitMQ 3.10: MQTT 3.1.1 only (MQTT 5, and so shared subscriptions, came in 3.13).

The link's and the central service's tests take it through `any_broker` (tests/conftest.py),
parametrized over `Mosquitto` and `RabbitMq`, which share a test interface: `url`, `port`,
`mqtt_version`, `take_down`/`bring_back` (an outage), `freeze`/`thaw` (a hung broker).
Test clients speak the broker's version through `paho_client`; a test of an MQTT 5 feature
calls `needs_mqtt5` first, which skips it on a 3.1.1 broker naming the feature.

RabbitMQ 3.10's MQTT differs from Mosquitto where tests notice: no MQTT 5 (no response
topics, PUBACK reason codes, user properties, retain-as-published, shared subscriptions), and
retained messages reach only subscriptions to their exact topic, never a wildcard filter.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgenode.ulid import new_ulid
from tests.conftest import free_port, terminate, wait_for_port

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
START_TIMEOUT_S = 120.0  # Erlang boots slowly: ~10 s idle, ~40 s on a loaded 2-core box


def rabbitmq_available() -> bool:
    return os.path.exists(RABBITMQ_SERVER) and shutil.which("erl") is not None


def needs_mqtt5(broker: Any, feature: str) -> None:
    """Skip the test on a broker that speaks only MQTT 3.1.1, saying which MQTT 5 feature
    it needs."""
    if broker.mqtt_version != "5":
        pytest.skip(f"needs {feature} (MQTT 5); {type(broker).__name__} speaks MQTT "
                    f"{broker.mqtt_version} only")


def paho_client(mqtt_version: str = "5", client_id: str | None = None, *,
                persistent: bool = False) -> paho.Client:
    """A raw paho client (a recorder, an operator, an attacker) speaking `mqtt_version`;
    connect it with `connect_kwargs(mqtt_version, persistent)`. `persistent`: the broker
    keeps its session and queues for it while it is away."""
    v5 = mqtt_version == "5"
    return paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{new_ulid()}",
                       protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
                       clean_session=None if v5 else not persistent)


def connect_kwargs(mqtt_version: str = "5", persistent: bool = False) -> dict[str, Any]:
    if mqtt_version != "5":
        return {}  # 3.1.1: the session's fate was given to the client's constructor
    properties = None
    if persistent:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
    return {"clean_start": not persistent, "properties": properties}


def connected_client(port: int, mqtt_version: str = "5",
                     client_id: str | None = None) -> paho.Client:
    """A paho client connected to 127.0.0.1:`port` with its loop running."""
    client = paho_client(mqtt_version, client_id)
    client.connect("127.0.0.1", port, **connect_kwargs(mqtt_version))
    client.loop_start()
    return client


def bom_properties(prefix: str) -> Properties:
    """U+FEFF in every kind of UTF-8 property: valid MQTT, refused by paho's decoder."""
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("note", "\ufeffhello")]
    props.ResponseTopic = f"{prefix}/cmd/result/\ufeff"
    props.ContentType = "\ufeffapplication/json"
    return props


class RabbitMq:
    mqtt_version = "3.1.1"

    def __init__(self, workdir: Path, epmd_port: int | None = None,
                 cookie_home: Path | None = None, tls: Any = None,
                 require_client_cert: bool = True):
        """Two brokers with one `epmd_port` and `cookie_home` (the Erlang cookie's home) can
        form a cluster (`join`). `tls` (anything with `ca`, `server_cert`, `server_key`, as
        tests/link/certs.py's Pki) adds an MQTT-over-TLS listener on `tls_port`; RabbitMQ has
        one set of TLS options per node, so a broker either requires client certificates or
        does not."""
        self.workdir = workdir
        self.tls, self.require_client_cert = tls, require_client_cert
        self.tls_port = free_port() if tls else None
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
            "mqtt.default_pass = guest\nloopback_users = none\n" + self._tls_config())
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

    def _tls_config(self) -> str:
        if not self.tls:
            return ""
        return (f"mqtt.listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
                f"ssl_options.cacertfile = {self.tls.ca}\n"
                f"ssl_options.certfile = {self.tls.server_cert}\n"
                f"ssl_options.keyfile = {self.tls.server_key}\n"
                "ssl_options.verify = verify_peer\n"
                f"ssl_options.fail_if_no_peer_cert = {str(self.require_client_cert).lower()}\n")

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

    def take_down(self) -> None:
        """An outage: the MQTT listener goes (the Erlang node stays, so durable sessions,
        their queues and the retained store come back with it)."""
        self.ctl("stop_app")

    def bring_back(self) -> None:
        self.ctl("start_app")
        wait_for_port(self.port, START_TIMEOUT_S)

    def recover(self) -> None:
        """Thawed and listening again, whatever a failed test left it in: the broker is
        shared by the session's later tests."""
        self.thaw()
        try:
            wait_for_port(self.port, 0.5)
        except TimeoutError:
            self.bring_back()

    @property
    def beam_pid(self) -> int:
        """The Erlang VM's process (rabbitmq-server is a shell wrapper around it)."""
        return int((self.workdir / "pid").read_text().split()[0])

    def freeze(self) -> None:
        os.kill(self.beam_pid, signal.SIGSTOP)

    def thaw(self) -> None:
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.kill(self.beam_pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.thaw()  # a frozen VM would ignore the TERM below
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

"""Why a connection failed before CONNACK, as `MqttClient.last_error` (what health shows) and
the log say it: the refused TCP connection with the system's words, the server certificate
nobody vouches for with the CA store to check, a handshake with something that is not TLS;
logged once, not at every retry. And shared subscriptions reach their handler."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from tests.conftest import Mosquitto, free_port
from tests.link.certs import Pki, make_pki
from tests.link.helpers import wait_until

QUICK = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.05}


@pytest.fixture
def clients() -> Iterator[list[MqttClient]]:
    made: list[MqttClient] = []
    yield made
    for client in made:
        client.stop()


def _client(clients: list[MqttClient], url: str, **options: object) -> MqttClient:
    client = MqttClient(BrokerOptions(url=url, client_id=f"reasons-{len(clients)}",
                                      **QUICK, **options))  # type: ignore[arg-type]
    clients.append(client)
    client.start()
    return client


def test_a_refused_tcp_connection_is_named_once_however_often_it_is_retried(
        clients: list[MqttClient], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="edgenode.link.mqtt")
    port = free_port()  # nothing listens there
    client = _client(clients, f"mqtt://127.0.0.1:{port}")
    assert wait_until(lambda: client.last_error != "", 5)
    refused = ConnectionRefusedError(111, "Connection refused")
    assert client.last_error == f"cannot connect: {refused}"
    time.sleep(0.4)  # retried every 25-50 ms: some eight attempts more
    said = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
    assert said == [f"mqtt: 127.0.0.1:{port} {client.last_error}"]
    assert not client.connected.is_set()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_a_connection_the_broker_refuses_keeps_the_brokers_own_reason(
        tmp_path: Path, clients: list[MqttClient]) -> None:
    """A wrong password on the mast: the broker's CONNACK says why, and the disconnect that
    follows must not overwrite that with a guess."""
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port=port,
                       extra=f"listener {port} 127.0.0.1\nallow_anonymous false\n").start()
    try:
        client = _client(clients, broker.url)
        assert wait_until(lambda: client.last_error != "", 5)
        time.sleep(0.5)  # several more tries, each refused and then disconnected
        assert client.last_error == "broker refused the connection: Not authorized"
        assert not client.connected.is_set()
    finally:
        broker.stop()


def test_a_server_certificate_the_system_store_does_not_vouch_for_names_the_store(
        tmp_path: Path, pki: Pki, clients: list[MqttClient]) -> None:
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port=port, extra=(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n")).start()
    try:
        client = _client(clients, f"mqtts://127.0.0.1:{port}")  # no ca_file: the system's
        assert wait_until(lambda: client.last_error != "", 5)
        reason = client.last_error
    finally:
        client.stop()
        broker.stop()
    assert reason == (
        "TLS server certificate refused: self-signed certificate in certificate chain (is the "
        "system CA store the CA that signed the broker's certificate, and does it name this "
        "host?)")


@pytest.fixture
def not_tls() -> Iterator[int]:
    """A port that answers a TLS client hello in plain text, as an HTTP server would."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    done.set()
    thread.join()
    server.close()


def test_a_tls_handshake_with_something_else_says_what_openssl_found(
        not_tls: int, clients: list[MqttClient]) -> None:
    with (pytest.raises(ssl.SSLError) as seen,
          socket.create_connection(("127.0.0.1", not_tls)) as raw):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    assert seen.value.reason  # OpenSSL's short name: WRONG_VERSION_NUMBER or the like
    client = _client(clients, f"mqtts://127.0.0.1:{not_tls}")
    assert wait_until(lambda: client.last_error != "", 5)
    assert client.last_error == f"TLS handshake failed: {seen.value.reason}"


@pytest.mark.parametrize("version", ["5", "3.1.1"])
def test_a_subscription_asks_for_qos_1_in_either_mqtt_version(
        mosquitto: Mosquitto, clients: list[MqttClient], version: str) -> None:
    # At QoS 0 a command sent while the node reconnects would be lost, not queued for it.
    client = _client(clients, mosquitto.url, mqtt_version=version)
    client.subscribe("edgenode/site-a/node-1/cmd", lambda message: None)
    assert wait_until(client.subscribed.is_set, 5)
    log = mosquitto.log_path.read_text()
    assert "edgenode/site-a/node-1/cmd (QoS 1)" in log, log[-1500:]


@pytest.mark.parametrize("when", ["before the connection is up", "once connected"])
def test_a_shared_subscription_reaches_its_handler(mosquitto: Mosquitto,
                                                   clients: list[MqttClient],
                                                   when: str) -> None:
    got: list[InboundMessage] = []
    client = _client(clients, mosquitto.url)
    if when == "once connected":  # subscribed at once, not at the next connect
        assert wait_until(client.connected.is_set, 5)
    client.subscribe("$share/central/edgenode/+/+/events", got.append)
    assert wait_until(client.subscribed.is_set, 5)
    sender = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    sender.connect("127.0.0.1", mosquitto.port)
    sender.loop_start()
    try:
        sender.publish("edgenode/site-a/node-1/events", b"{}", qos=1).wait_for_publish(5)
        assert wait_until(lambda: len(got) == 1, 5)
    finally:
        sender.disconnect()
        sender.loop_stop()
    assert got[0].topic == "edgenode/site-a/node-1/events" and got[0].payload == b"{}"

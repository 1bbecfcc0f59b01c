"""TLS, mutual TLS, a wrong CA, and the password from a systemd credential, on a real broker.
The TLS tests run on Mosquitto and, under `make test-long`, on one RabbitMQ for the module
(MQTT 3.1.1) that requires client certificates: RabbitMQ has one set of TLS options per node,
so server-only TLS is Mosquitto's part."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgenode.health import Health
from edgenode.link import Link, LinkConfigError
from tests.brokers import RabbitMq, rabbitmq_available
from tests.conftest import Mosquitto, free_port
from tests.link.certs import Pki, make_pki
from tests.link.helpers import Recorder, make_config, track_event, wait_until


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_broker(tmp_path: Path, pki: Pki, *, mutual: bool) -> Mosquitto:
    port = free_port()
    extra = (f"listener {port} 127.0.0.1\nallow_anonymous true\n"
             f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
             f"require_certificate {'true' if mutual else 'false'}\n")
    return Mosquitto(tmp_path / "broker", port=port, extra=extra)


@pytest.fixture(scope="module")
def rabbitmq_tls(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[RabbitMq]:
    if not rabbitmq_available():
        pytest.fail("rabbitmq-server is not installed: run `make setup`, which installs it")
    broker = RabbitMq(tmp_path_factory.mktemp("rabbitmq-tls"), tls=pki,
                      require_client_cert=True).start()
    yield broker
    broker.stop()


# `tls_broker(mutual)` -> (TLS port, MQTT version); mutual None: either kind will do.
TlsBroker = Callable[[bool | None], tuple[int, str]]


@pytest.fixture(params=["mosquitto", pytest.param("rabbitmq", marks=pytest.mark.long)])
def tls_broker(request: pytest.FixtureRequest, tmp_path: Path, pki: Pki) -> Iterator[TlsBroker]:
    started: list[Mosquitto] = []

    def start(mutual: bool | None) -> tuple[int, str]:
        if request.param == "rabbitmq":
            if mutual is False:
                pytest.skip("server-only TLS: this module's RabbitMQ requires client "
                            "certificates (one set of TLS options per RabbitMQ node)")
            rabbitmq: RabbitMq = request.getfixturevalue("rabbitmq_tls")
            assert rabbitmq.tls_port is not None
            return rabbitmq.tls_port, rabbitmq.mqtt_version
        broker = _tls_broker(tmp_path, pki, mutual=bool(mutual)).start()
        started.append(broker)
        return broker.port, broker.mqtt_version

    yield start
    for broker in started:
        broker.stop()


def _link(tmp_path: Path, port: int, links: list[Link], **broker: object) -> Link:
    config = make_config(tmp_path, f"mqtts://127.0.0.1:{port}", reconnect_min_s=0.2,
                         reconnect_max_s=1, **broker)
    link = Link(config, tmp_path / "state", Health(), version="0.1.0", capabilities=[],
                config_digest="sha256:x")
    links.append(link)
    return link


def _recorder(port: int, pki: Pki, mqtt_version: str) -> Recorder:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return Recorder(port, tls=context, mqtt_version=mqtt_version).start()


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
def test_events_flow_over_verified_tls(tmp_path: Path, pki: Pki, links: list[Link],
                                       tls_broker: TlsBroker, mutual: bool) -> None:
    port, version = tls_broker(mutual)
    recorder = _recorder(port, pki, version)
    client = {"cert_file": pki.client_cert, "key_file": pki.client_key} if mutual else {}
    link = _link(tmp_path, port, links, ca_file=pki.ca, mqtt_version=version, **client)
    link.start()
    link.publish_event(track_event("new"))
    assert recorder.wait_for(lambda: len(recorder.track_events()) == 1)
    assert recorder.problems == []
    recorder.stop()


def test_wrong_ca_is_refused_and_health_names_broker_and_tls(tmp_path: Path, pki: Pki,
                                                             links: list[Link],
                                                             tls_broker: TlsBroker) -> None:
    stranger = make_pki(tmp_path / "other", label="stranger")
    port, version = tls_broker(None)
    health = Health()
    config = make_config(tmp_path, f"mqtts://127.0.0.1:{port}", ca_file=stranger.ca,
                         reconnect_min_s=0.2, reconnect_max_s=1, mqtt_version=version)
    link = Link(config, tmp_path / "state", health, version="0.1.0", capabilities=[],
                config_digest="sha256:x")
    links.append(link)
    link.start()
    link.publish_event(track_event("new"))
    stage = health.stages["link"]
    assert wait_until(lambda: stage.state == "failed", 10)
    assert f"127.0.0.1:{port}" in stage.reason
    assert "TLS server certificate refused" in stage.reason
    assert "self-signed certificate in certificate chain" in stage.reason
    assert str(stranger.ca) in stage.reason
    assert not link.connected and link.counters()["backlog"] == 1


def test_missing_client_certificate_is_refused_by_a_mutual_tls_broker(
        tmp_path: Path, pki: Pki, links: list[Link], tls_broker: TlsBroker) -> None:
    port, version = tls_broker(True)
    health = Health()
    config = make_config(tmp_path, f"mqtts://127.0.0.1:{port}", ca_file=pki.ca,
                         reconnect_min_s=0.2, reconnect_max_s=1, mqtt_version=version)
    link = Link(config, tmp_path / "state", health, version="0.1.0", capabilities=[],
                config_digest="sha256:x")
    links.append(link)
    link.start()
    stage = health.stages["link"]
    assert wait_until(lambda: stage.state == "failed", 10)
    assert not link.connected
    assert f"127.0.0.1:{port}" in stage.reason
    assert "client certificate" in stage.reason


def test_password_from_systemd_credential_logs_in(tmp_path: Path, links: list[Link],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "node-test-n1", "s3cret"],
                   check=True, capture_output=True)
    passwd.chmod(0o644)
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port=port, extra=(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"))
    broker.start()
    try:
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "mqtt-password").write_text("s3cret\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
        config = make_config(tmp_path, broker.url, username="node-test-n1",
                             password_credential="mqtt-password")
        link = Link(config, tmp_path / "state", Health(), version="0.1.0", capabilities=[],
                    config_digest="sha256:x")
        links.append(link)
        link.start()
        assert wait_until(lambda: link.connected, 10)
    finally:
        broker.stop()


def test_credential_without_credentials_directory_is_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = make_config(tmp_path, "mqtt://127.0.0.1:1883", username="u",
                         password_credential="mqtt-password")
    rule = r"broker\.password_credential.*CREDENTIALS_DIRECTORY"
    with pytest.raises(LinkConfigError, match=rule):
        Link(config, tmp_path / "state", Health(), version="0", capabilities=[],
             config_digest="x")

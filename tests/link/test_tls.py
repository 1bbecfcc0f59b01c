"""TLS, mutual TLS, a wrong CA, and the password from a systemd credential, on a real broker."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgenode.health import Health
from edgenode.link import Link, LinkConfigError
from tests.conftest import Mosquitto, free_port
from tests.link.certs import Pki, make_pki
from tests.link.helpers import Recorder, make_config, track_event, wait_until


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _tls_broker(tmp_path: Path, pki: Pki, *, mutual: bool) -> Mosquitto:
    port = free_port()
    extra = (f"listener {port} 127.0.0.1\nallow_anonymous true\n"
             f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
             f"require_certificate {'true' if mutual else 'false'}\n")
    return Mosquitto(tmp_path / "broker", port=port, extra=extra)


@pytest.fixture
def links() -> Iterator[list[Link]]:
    made: list[Link] = []
    yield made
    for link in made:
        link.stop()


def _link(tmp_path: Path, port: int, links: list[Link], **broker: object) -> Link:
    config = make_config(tmp_path, f"mqtts://127.0.0.1:{port}", reconnect_min_s=0.2,
                         reconnect_max_s=1, **broker)
    link = Link(config, tmp_path / "state", Health(), version="0.1.0", capabilities=[],
                config_digest="sha256:x")
    links.append(link)
    return link


def _recorder(port: int, pki: Pki) -> Recorder:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return Recorder(port, tls=context).start()


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
def test_events_flow_over_verified_tls(tmp_path: Path, pki: Pki, links: list[Link],
                                       mutual: bool) -> None:
    broker = _tls_broker(tmp_path, pki, mutual=mutual).start()
    try:
        recorder = _recorder(broker.port, pki)
        client = {"cert_file": pki.client_cert, "key_file": pki.client_key} if mutual else {}
        link = _link(tmp_path, broker.port, links, ca_file=pki.ca, **client)
        link.start()
        link.publish_event(track_event("new"))
        assert recorder.wait_for(lambda: len(recorder.track_events()) == 1)
        assert recorder.problems == []
        recorder.stop()
    finally:
        broker.stop()


def test_wrong_ca_is_refused_and_health_names_broker_and_tls(tmp_path: Path, pki: Pki,
                                                             links: list[Link]) -> None:
    stranger = make_pki(tmp_path / "other", label="stranger")
    broker = _tls_broker(tmp_path, pki, mutual=False).start()
    try:
        health = Health()
        config = make_config(tmp_path, f"mqtts://127.0.0.1:{broker.port}", ca_file=stranger.ca,
                             reconnect_min_s=0.2, reconnect_max_s=1)
        link = Link(config, tmp_path / "state", health, version="0.1.0", capabilities=[],
                    config_digest="sha256:x")
        links.append(link)
        link.start()
        link.publish_event(track_event("new"))
        stage = health.stages["link"]
        assert wait_until(lambda: stage.state == "failed", 10)
        assert f"127.0.0.1:{broker.port}" in stage.reason
        assert "TLS server certificate refused" in stage.reason
        assert "self-signed certificate in certificate chain" in stage.reason
        assert str(stranger.ca) in stage.reason
        assert not link.connected and link.counters()["backlog"] == 1
    finally:
        broker.stop()


def test_missing_client_certificate_is_refused_by_a_mutual_tls_broker(
        tmp_path: Path, pki: Pki, links: list[Link]) -> None:
    broker = _tls_broker(tmp_path, pki, mutual=True).start()
    try:
        health = Health()
        config = make_config(tmp_path, f"mqtts://127.0.0.1:{broker.port}", ca_file=pki.ca,
                             reconnect_min_s=0.2, reconnect_max_s=1)
        link = Link(config, tmp_path / "state", health, version="0.1.0", capabilities=[],
                    config_digest="sha256:x")
        links.append(link)
        link.start()
        stage = health.stages["link"]
        assert wait_until(lambda: stage.state == "failed", 10)
        assert not link.connected
        assert f"127.0.0.1:{broker.port}" in stage.reason
        assert "client certificate" in stage.reason
    finally:
        broker.stop()


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

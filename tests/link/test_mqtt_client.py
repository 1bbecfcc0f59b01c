"""edgenode/link/mqtt.py's client: a publish's acknowledgement reaches `on_published` with
its mid, and a message given up as refused is forgotten once, by topic."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho

from edgenode.link.mqtt import BrokerOptions, MqttClient, _TolerantClient, plain_filter
from tests.conftest import Mosquitto


def test_a_publish_acknowledged_by_the_broker_reaches_on_published_with_its_mid(
        mosquitto: Mosquitto) -> None:
    client = MqttClient(BrokerOptions(url=mosquitto.url, client_id="acks"))
    acked: list[int] = []
    results: list[tuple[int, int]] = []
    done = threading.Event()
    client.on_published(acked.append)
    client.on_publish_result(lambda mid, code: (results.append((mid, code)), done.set()))
    client.start()
    try:
        assert client.connected.wait(5)
        info = client.publish("edgenode/test/n1/events", b"{}", qos=1)
        assert done.wait(5)
        assert acked == [info.mid]
        assert [mid for mid, _ in results] == [info.mid]
        assert results[0][1] < 0x80  # success (0x10: nobody subscribed), not a refusal
    finally:
        client.stop()


def test_a_message_given_up_is_forgotten_once_and_named_by_its_topic() -> None:
    client = _TolerantClient(paho.CallbackAPIVersion.VERSION2, client_id="refusals",
                             protocol=paho.MQTTv5)
    queued = client.publish("edgenode/test/n1/audit", b"{}", qos=1)  # offline: kept to send
    assert client.give_up(queued.mid) == "edgenode/test/n1/audit"
    assert client.give_up(queued.mid) is None  # forgotten: nothing left to send again
    assert client.give_up(queued.mid + 1) is None  # never there (acknowledged after all)


def test_a_shared_subscription_matches_on_its_topic_filter() -> None:
    assert plain_filter("$share/central/edgenode/+/+/events") == "edgenode/+/+/events"
    assert plain_filter("edgenode/+/+/events") == "edgenode/+/+/events"
    assert plain_filter("$shared/x/y") == "$shared/x/y"

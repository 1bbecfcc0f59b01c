"""Two RabbitMQ brokers clustered on loopback: nodes on broker A, the central service on
broker B, and B's central sees every event A's nodes publish (MQTT 3.1.1: RabbitMQ 3.10)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgenode.central.fleetsim import FleetSim
from edgenode.central.service import Central
from tests.brokers import RabbitMq, rabbitmq_available
from tests.conftest import free_port
from tests.link.helpers import wait_until


@pytest.mark.long
@pytest.mark.timeout(600)
def test_a_node_on_broker_a_and_central_on_broker_b_of_one_cluster_see_every_event(
        tmp_path: Path):
    if not rabbitmq_available():
        pytest.fail("rabbitmq-server is not installed: run `make setup`")
    epmd = free_port()
    a = RabbitMq(tmp_path / "a", epmd_port=epmd, cookie_home=tmp_path).start()
    b = RabbitMq(tmp_path / "b", epmd_port=epmd, cookie_home=tmp_path)
    central = None
    try:
        b.start()
        b.join(a)
        assert a.nodename in b.ctl("cluster_status")
        central = Central(b.url, instance="c-cluster", mqtt_version="3.1.1",
                          sites=["site000", "site001"])
        central.start()
        assert central.wait_ready(30)
        sim = FleetSim(a.url, nodes=10, drones=2, seconds=8, nodes_per_site=5,
                       mqtt_version="3.1.1")
        result = sim.run()
        assert wait_until(lambda: central.events >= result["events"], 30)
        time.sleep(1)
        assert central.events == result["events"] == len(set(sim.published_ids))
        assert central.duplicates == 0 and central.stats()["lost"] == 0
        assert central.stats()["fused_tracks"] >= 2
    finally:
        if central is not None:
            central.stop()
        b.stop()
        a.stop()

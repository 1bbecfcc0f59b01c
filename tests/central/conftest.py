"""Brokers for the central service's tests: a fresh Mosquitto (MQTT 5) per test, and one
RabbitMQ with its MQTT plugin (3.1.1 only) per session; `any_broker` runs a test on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import RabbitMq, rabbitmq_available
from tests.conftest import Mosquitto


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMq]:
    if not rabbitmq_available():
        pytest.fail("rabbitmq-server is not installed: run `make setup`, which installs it")
    broker = RabbitMq(tmp_path_factory.mktemp("rabbitmq")).start()
    yield broker
    broker.stop()


# RabbitMQ takes 15-35 s to start: its runs go to `make test-long` (make test: Mosquitto).
@pytest.fixture(params=["mosquitto", pytest.param("rabbitmq", marks=pytest.mark.long)])
def any_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A broker with `.url` and `.mqtt_version` (the highest it speaks)."""
    if request.param == "rabbitmq":
        yield request.getfixturevalue("rabbitmq")
        return
    broker = Mosquitto(tmp_path / "broker").start()
    broker.mqtt_version = "5"  # type: ignore[attr-defined]
    yield broker
    broker.stop()

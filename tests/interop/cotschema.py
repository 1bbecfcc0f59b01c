"""The rules of the CoT base event schema (CoT Event 2.0: event, point, detail) that a TAK
client relies on, as a checker for the tests."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime

TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
TYPE = re.compile(r"^[a-z](-[A-Za-z0-9]+)*$")
HOW = re.compile(r"^[hm](-[a-z0-9]+)*$")


def when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def validate(event: ET.Element) -> None:
    """Raise AssertionError naming the first rule the event breaks."""
    assert event.tag == "event", event.tag
    assert event.get("version") == "2.0", "version must be 2.0"
    assert event.get("uid"), "uid is required"
    assert TYPE.match(event.get("type", "")), f"type {event.get('type')!r}"
    assert HOW.match(event.get("how", "")), f"how {event.get('how')!r}"
    for name in ("time", "start", "stale"):
        assert TIME.match(event.get(name, "")), f"{name} {event.get(name)!r}"
    assert when(event.get("start")) <= when(event.get("stale")), "stale before start"
    point = event.find("point")
    assert point is not None, "point is required"
    lat, lon = float(point.get("lat")), float(point.get("lon"))
    assert -90 <= lat <= 90 and -180 <= lon <= 180, (lat, lon)
    float(point.get("hae"))
    assert float(point.get("ce")) >= 0 and float(point.get("le")) >= 0, "ce/le"
    assert len(event.findall("detail")) <= 1

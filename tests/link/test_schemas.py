"""Every payload shape has a strict, versioned schema; each schema refuses a known-bad case."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edgenode.control import Effector
from edgenode.control.audit import record_hash
from edgenode.control.operator import encode as operator_encode
from edgenode.health import Health
from edgenode.link.mqtt import InboundMessage
from edgenode.link.payloads import (
    RESULT_STATUSES,
    Envelope,
    encode,
    load_schema,
    result_id,
    schema_names,
)
from edgenode.link.topics import SCHEMA_BY_SUFFIX, Topics, schema_for_topic
from edgenode.ulid import new_ulid
from tests.conftest import ROOT
from tests.link.helpers import NODE, SITE, track_event

ENV = Envelope(SITE, NODE, 7)
NOW = time.time()


def good_examples() -> dict[str, list[dict[str, Any]]]:
    online = ENV.online(t=NOW, version="0.1.0", hardware="pi5-iwr6843-uma16",
                        capabilities=["radar", "acoustic", "effector"],
                        position={"datum": "WGS84", "latitude_deg": 51.5,
                                  "longitude_deg": -0.12, "altitude_m": 30.0},
                        mast_heading_deg=90.0, config_digest="sha256:ab12",
                        client_id="edgenode-test-n1", mqtt_version="5")
    link = {"session": 7, "connected": True, "backlog": 0, "backlog_bytes": 0, "in_flight": 0,
            "uncommitted": 0, "published": 3, "replayed": 0, "refused": 0, "outbox_resets": 0,
            "dropped": 0, "gaps": 0, "connects": 1, "cmd_received": 0, "cmd_results": 0,
            "cmd_overflow": 0, "responses_refused": 0, "last_error": ""}
    return {
        "events": [ENV.event(track_event("new"), 0, NOW),
                   ENV.event(track_event("update", updates=4), 1, NOW),
                   ENV.event(track_event("end", updates=9), 2, NOW),
                   ENV.gap(stream="events", session=6, ranges=[[4, 6], [9, 9]], count=4,
                           reason="outbox_size_cap", t=NOW)],
        "status": [online, ENV.offline(reason="connection_lost", t=None),
                   ENV.offline(reason="stopped", t=NOW)],
        "health": [ENV.state({"state": "degraded",
                              "parts": {"radar": {"state": "degraded", "reason": "no frame",
                                                  "since_beat_s": 0.1}},
                              "system": {"cpu_temp_c": 61.2, "throttled": 0,
                                         "clock_synced": True},
                              "queues": {"readings": 0},
                              "counters": {"radar": {"frames": 12, "bytes_skipped": 0},
                                           "effector": {"received": 3, "junk": 1}},
                              "effector": "SAFE",
                              "readings": {"bus_voltage_v": 12.1}, "link": link}, NOW),
                   ENV.state({"state": "ok", "parts": {}, "system": {
                       "cpu_temp_c": None, "throttled": None, "clock_synced": False,
                       "error": "adjtimex failed"}, "link": link}, NOW)],
        "effector": [ENV.state(effector_state(), NOW),
                     ENV.state(effector_state(
                         state="ENGAGED", engaged_until=NOW + 5,
                         engagement={"by": "op1", "command_id": new_ulid(), "duration_s": 5.0,
                                     "bearing_deg": 120.0}), NOW),
                     ENV.state(effector_state(
                         state="FAULT", armed_until=None, armed_by=None, aux_closed=True,
                         fault={"code": "stuck_on", "detail": "aux contact stayed closed"},
                         alarm={"name": "stuck_on", "detail": "aux contact stayed closed",
                                "since": NOW}), NOW)],
        "audit": [ENV.audit(audit_record(), 0, NOW)],
        "selftest": [ENV.state(selftest_report(), NOW)],
        "cmd": [{"v": 1, "id": new_ulid(), "site": SITE, "node": NODE, "action": "safe",
                 "params": {}, "issued_at": NOW, "expires_at": NOW + 30, "key_id": "op1",
                 "signature": "c2lnbmF0dXJl"}],
        "ping": [ENV.ping(nonce="0123456789abcdef", n=3, t=NOW)],
        "cmd_result": [ENV.result({"v": 1, "id": new_ulid(), "status": "ok", "reason": None,
                                   "state": "ARMED"}, NOW),
                       ENV.result({"v": 1, "id": None, "status": "rejected",
                                   "reason": "malformed: not a JSON document", "state": "SAFE"},
                                  NOW),
                       ENV.result({"id": new_ulid(), "action": "safe", "status": "error",
                                   "reason": "internal error: RuntimeError: boom"}, NOW)],
    }


def selftest_report() -> dict[str, Any]:
    """The shape edgenode/selftest builds (docs/selftest.md)."""
    from edgenode.selftest import FAIL, PASS, check
    from edgenode.selftest.result import make_report

    return make_report([
        check("radar", "radar.framing", FAIL, value=54.0, unit="%", expected="<= 5 %",
              hint="54 % of radar bytes were not frames: check the baud rate (921600)",
              frames=87),
        check("relay", "relay.inputs", PASS, value="drive off, aux open",
              expected="consistent")], mode="daemon", window_s=2.0, duration_s=2.4)


def effector_state(**changes: Any) -> dict[str, Any]:
    """The shape edgenode/control/effector.py publishes (ARMED by default)."""
    return {"v": 1, "site": SITE, "node": NODE, "state": "ARMED", "since": NOW,
            "reason": "armed by op1 for 60 s", "enabled": True, "armed_until": NOW + 60,
            "armed_by": "op1", "engaged_until": None, "engagement": None,
            "key_switch": "operate", "aux_closed": False, "fault": None, "alarm": None,
            "keys_version": 0, "t": NOW, **changes}


def audit_record() -> dict[str, Any]:
    record = {"seq": 4, "t": NOW, "kind": "command", "data": {"topic": "x", "retained": False},
              "prev": "0" * 64}
    return {**record, "hash": record_hash(record)}


def _mutate(example: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    bad = copy.deepcopy(example)
    target = bad
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return bad


_DELETE = object()
# (schema, index of the good example, path, bad value, what makes it bad)
BAD_CASES = [
    ("events", 0, ["v"], 2, "unknown schema version"),
    ("events", 0, ["seq"], -1, "negative seq"),
    ("events", 0, ["before"], {"object_id": "x"}, "new event with a before state"),
    ("events", 1, ["after", "azimuth_deg", "error"], -1.0, "negative error"),
    ("events", 1, ["after", "classification", 0, "type"], "ufo", "unknown class"),
    ("events", 1, ["after", "colour"], "red", "extra track field"),
    ("events", 0, ["event_id"], "not-a-ulid", "event id is not a ULID"),
    ("events", 3, ["dropped", "ranges"], [[1]], "half a range"),
    ("events", 3, ["reason"], "felt like it", "unknown drop reason"),
    ("status", 0, ["capabilities"], _DELETE, "birth without capabilities"),
    ("status", 1, ["state"], "asleep", "unknown state"),
    ("health", 0, ["link", "backlog"], -3, "negative backlog"),
    ("health", 0, ["parts", "radar", "state"], "fine", "unknown part state"),
    ("health", 0, ["counters", "radar", "frames"], -1, "negative counter"),
    ("health", 0, ["cpu_temp_c"], 50.0, "system facts outside system"),
    ("effector", 0, ["state"], "ON", "unknown effector state"),
    ("effector", 0, ["keys_version"], _DELETE, "effector state without keys_version"),
    ("effector", 0, ["relay_on"], True, "effector field control does not publish"),
    ("effector", 1, ["engagement", "command"], "x", "engagement field renamed"),
    ("effector", 1, ["engagement", "bearing_deg"], _DELETE, "engagement without a target"),
    ("effector", 2, ["alarm"], "stuck_on", "alarm as a bare string"),
    ("audit", 0, ["record"], {}, "empty audit record"),
    ("audit", 0, ["record", "hash"], "ab", "audit record hash not sha256 hex"),
    ("audit", 0, ["record", "note"], "hi", "field added inside the audit record"),
    ("cmd", 0, ["node"], [], "command naming no node"),
    ("selftest", 0, ["checks", 0, "result"], "meh", "unknown check result"),
    ("selftest", 0, ["checks", 0, "hint"], "", "a FAIL without a hint"),
    ("selftest", 0, ["report_version"], 1, "old report version"),
    ("cmd", 0, ["signature"], _DELETE, "unsigned command"),
    ("cmd", 0, ["v"], _DELETE, "unversioned command"),
    ("cmd_result", 0, ["status"], "maybe", "unknown result status"),
    ("cmd_result", 0, ["status"], "failed", "status outside ok|rejected|error"),
    ("cmd_result", 0, ["state"], "ON", "unknown effector state in a result"),
    ("cmd_result", 1, ["id"], "not-a-ulid", "result id is not a ULID"),
    ("cmd_result", 0, ["extra"], 1, "extra field"),
    ("ping", 0, ["nonce"], "a connection", "ping nonce not 16 hex digits"),
    ("ping", 0, ["n"], 0, "ping numbers start at 1"),
    ("health", 0, ["link", "carries_commands"], "yes", "carries_commands not a boolean"),
]


def _errors(schema_name: str, payload: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(load_schema(schema_name))
    return [e.message for e in validator.iter_errors(payload)]


def _open_objects(node: Any, path: str = "") -> list[str]:
    """Every sub-schema that lists `properties` but lets others through. The branches of an
    if/then only add conditions to an object closed elsewhere, so they are not walked."""
    out: list[str] = []
    if isinstance(node, dict):
        if "properties" in node and node.get("additionalProperties", True) is True:
            out.append(path or "/")
        for key, value in node.items():
            if key not in ("if", "then", "else"):
                out += _open_objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _open_objects(value, f"{path}/{i}")
    return out


def _message_schemas(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The top-level message shapes: the schema itself, or each `oneOf` branch it refers to."""
    if "oneOf" not in schema:
        return [schema]
    defs = schema.get("$defs", {})
    return [defs[b["$ref"].rsplit("/", 1)[1]] if "$ref" in b else b for b in schema["oneOf"]]


def test_every_schema_is_valid_strict_and_versioned() -> None:
    assert sorted(SCHEMA_BY_SUFFIX.values()) == schema_names()
    for name in schema_names():
        schema = load_schema(name)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert _open_objects(schema) == [], f"{name}: objects that accept unknown fields"
        for shape in _message_schemas(schema):
            assert shape["properties"]["v"].get("const") == 1, f"{name}: no version field"
            assert "v" in shape["required"], f"{name}: version not required"


def test_the_strictness_check_sees_one_open_object_deep_inside() -> None:
    schema = copy.deepcopy(load_schema("status"))
    del schema["$defs"]["online"]["properties"]["position"]["additionalProperties"]
    assert _open_objects(schema) == ["/$defs/online/properties/position"]


@pytest.mark.parametrize("name", sorted(SCHEMA_BY_SUFFIX.values()))
def test_payloads_the_link_builds_match_their_schema(name: str) -> None:
    for example in good_examples()[name]:
        assert _errors(name, json.loads(encode(example))) == [], example


@pytest.mark.parametrize(("name", "index", "path", "value", "why"), BAD_CASES,
                         ids=[case[4] for case in BAD_CASES])
def test_schema_rejects_a_known_bad_payload(name: str, index: int, path: list[Any],
                                            value: Any, why: str) -> None:
    good = good_examples()[name][index]
    assert _errors(name, good) == []
    assert _errors(name, _mutate(good, path, value)), f"{name} accepted: {why}"


def test_each_schema_has_a_bad_case() -> None:
    assert {case[0] for case in BAD_CASES} == set(schema_names())


def test_replayed_flag_is_allowed_only_as_true() -> None:
    event = json.loads(encode(ENV.event(track_event("update", updates=2), 5, NOW)))
    assert _errors("events", {**event, "replayed": True}) == []
    assert _errors("events", {**event, "replayed": False})


def test_topics_map_to_schemas_and_strangers_to_none() -> None:
    topics = Topics(SITE, NODE)
    assert schema_for_topic(topics.events) == "events"
    assert schema_for_topic(topics.cmd_result) == "cmd_result"
    assert schema_for_topic(topics.cmd_result + "/ctl-abc") == "cmd_result"
    assert schema_for_topic(f"{topics.prefix}/debug") is None
    assert schema_for_topic("other/thing") is None


def test_docs_carry_every_schema_verbatim() -> None:
    """docs/mqtt.md embeds each schema file; the two never drift apart."""
    doc = (ROOT / "docs" / "mqtt.md").read_text()
    blocks = re.findall(r"<!-- schema: (\w+) -->\n```json\n(.*?)```", doc, re.S)
    embedded = {name: json.loads(body) for name, body in blocks}
    assert sorted(embedded) == schema_names()
    for name, schema in embedded.items():
        assert schema == load_schema(name), (
            f"docs/mqtt.md: schema {name} is stale: python -m edgenode.link.schemadoc")


def test_every_payload_a_real_effector_emits_matches_its_schema(tmp_path: Path) -> None:
    """The contract between edgenode/control and the link: a real Effector on the fake relay
    board goes through arm, engage (bearing and track), disengage, junk, a retained command,
    safe and a stuck relay; each state, result and audit record it hands the link, wrapped
    by the link's envelope, validates."""
    from hal.ports.gpio.fake import FakeGpio
    from hal.relay import JammerRelay
    from tests.control import conftest as rig

    gpio = FakeGpio(inputs={rig.KEY_OPERATE: True})
    relay = JammerRelay(gpio, drive_line=rig.DRIVE, heartbeat_line=rig.HEARTBEAT,
                        aux_line=rig.AUX, key_test_line=rig.KEY_TEST,
                        key_operate_line=rig.KEY_OPERATE)
    coil = rig.RelayCoil(gpio)
    states: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    effector = Effector(relay, rig.make_config(), Health(), tmp_path / "state",
                        publish_audit=records.append, publish_state=states.append,
                        clock_synced=lambda: True)
    alice, bob = rig.OPERATORS["alice"], rig.OPERATORS["bob"]

    def send(payload: bytes, retain: bool = False) -> dict[str, Any]:
        return effector.handle_command(
            InboundMessage(f"edgenode/{rig.SITE}/{rig.NODE}/cmd", payload, retain))

    def signed(who: Any, action: str, params: dict[str, Any] | None = None) -> bytes:
        return operator_encode(rig.command(who, action, params))

    results = []
    try:
        effector.start()
        results.append(send(signed(alice, "arm", {"ttl_s": 30})))
        results.append(send(signed(alice, "engage", {"duration_s": 5, "bearing_deg": 90})))
        results.append(send(signed(bob, "disengage")))
        results.append(send(signed(alice, "engage", {"duration_s": 5,
                                                     "track": "01ARZ3NDEKTSV4RRFFQ69G5FAV"})))
        results.append(send(b"\x00not json"))
        results.append(send(b'{"id": "not-a-ulid"}'))
        results.append(send(signed(alice, "arm", {"ttl_s": 30}), retain=True))
        results.append(send(signed(rig.OPERATORS["obs"], "arm", {"ttl_s": 30})))
        coil.stuck = True  # the relay welds: disengaging leaves the aux contact closed
        results.append(send(signed(bob, "disengage")))
        assert rig.wait_for(lambda: effector.state == "FAULT")
        results.append(send(signed(alice, "safe")))
        assert effector.flush()
    finally:
        effector.stop()
        coil.stop()
    assert [r["status"] for r in results] == ["ok", "ok", "ok", "ok", "rejected", "rejected",
                                              "rejected", "rejected", "ok", "ok"]
    assert any(s["engagement"] and "track" in s["engagement"] for s in states)
    assert any(s["alarm"] for s in states) and any(s["fault"] for s in states)
    wrapped = ([("cmd_result", ENV.result(r, NOW)) for r in results]
               + [("effector", ENV.state(s, NOW)) for s in states]
               + [("audit", ENV.audit(r, i, NOW)) for i, r in enumerate(records)])
    assert {r["record"]["kind"] for _, r in wrapped if "record" in r} >= {
        "start", "command", "result", "state", "junk"}
    for name, payload in wrapped:
        assert _errors(name, json.loads(encode(payload))) == [], (name, payload)


def test_a_result_echoes_only_a_ulid_as_the_command_id() -> None:
    ulid = new_ulid()
    assert result_id(json.dumps({"id": ulid}).encode()) == ulid
    for junk in (b'{"id": "drop table"}', b'{"id": 5}', b"[1]", b"\xff", b"[" * 100_000):
        assert result_id(junk) is None
    assert set(RESULT_STATUSES) == set(load_schema("cmd_result")["properties"]["status"]["enum"])

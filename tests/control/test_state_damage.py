"""A damaged state directory never stops the node for good (issue 22 point 12): the damaged
file is moved aside and named in the log and health, and the effector starts SAFE, with a
FAULT latched where one was (or may have been) latched."""

from __future__ import annotations

import json
from pathlib import Path

from edgenode.control.audit import segments
from edgenode.control.store import EffectorStore
from tests.control.conftest import RigFactory


def test_garbage_effector_db_starts_with_a_fault_latched(make_rig: RigFactory,
                                                         tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "control").mkdir(parents=True)
    (state / "control" / "effector.db").write_bytes(b"this is not sqlite\x00" * 300)
    rig = make_rig(state_dir=state)
    assert rig.effector.state == "FAULT"
    stage = rig.health.stages["effector"]
    assert stage.state == "degraded" and "state_damaged" in stage.reason
    assert any(p.name.startswith("effector.db.damaged-") for p in (state / "control").iterdir())
    assert rig.send("alice", "arm", {"ttl_s": 10})["reason"].startswith("fault")
    assert rig.send("root", "reset")["status"] == "ok"
    assert rig.send("alice", "arm", {"ttl_s": 10})["status"] == "ok"
    assert not rig.drive_went_high()


def test_unreadable_latched_fault_stays_latched(make_rig: RigFactory, tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = EffectorStore(state / "control")
    store.put("fault", "{not json")
    store.close()
    rig = make_rig(state_dir=state)
    assert rig.effector.state == "FAULT"
    assert rig.send("alice", "arm", {"ttl_s": 10})["reason"].startswith("fault")


def test_bad_anchor_and_an_impossible_last_seq_are_named_not_fatal(make_rig: RigFactory,
                                                                  tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = make_rig(state_dir=state)
    first.effector.stop()
    audit = state / "audit"
    (audit / "anchor.json").write_text('{"seq": "x", "hash": 5}')
    last = segments(audit)[-1][1]
    record = json.loads(last.read_text().splitlines()[-1])
    with open(last, "a") as fh:
        fh.write(json.dumps({**record, "seq": "SEQ"}).replace('"SEQ"', "1e999") + "\n")
    rig = make_rig(state_dir=state)
    assert rig.effector.state == "SAFE"
    stage = rig.health.stages["effector"]
    assert stage.state == "degraded" and "anchor.json" in stage.reason, stage.reason
    assert str(last) in stage.reason
    assert not (audit / "anchor.json").exists()
    assert rig.send("alice", "arm", {"ttl_s": 10})["status"] == "ok"


def test_a_damaged_store_latches_a_fault_that_says_what_was_lost_and_what_to_do(
        make_rig: RigFactory, tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "control").mkdir(parents=True)
    (state / "control" / "effector.db").write_bytes(b"this is not sqlite\x00" * 300)
    rig = make_rig(state_dir=state)
    assert rig.effector.flush()
    fault = rig.states[-1]["fault"]
    assert fault["code"] == "state_damaged"
    assert fault["detail"].endswith(": its latched fault, replay cache and duty ledger are "
                                    "lost; check the relay, then an admin reset"), fault


def test_a_latched_fault_without_a_detail_is_restored_with_an_empty_one(
        make_rig: RigFactory, tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = EffectorStore(state / "control")
    store.put("fault", json.dumps({"code": "aux_open"}))
    store.close()
    rig = make_rig(state_dir=state)
    assert rig.effector.state == "FAULT" and rig.effector.flush()
    assert rig.states[-1]["fault"] == {"code": "aux_open", "detail": "latched before restart: "}


def test_the_start_record_names_the_key_set_and_whether_the_effector_is_enabled(
        make_rig: RigFactory, tmp_path: Path) -> None:
    rig = make_rig(state_dir=tmp_path / "state")
    assert rig.effector.flush()
    (start,) = [r["data"] for r in rig.audit if r["kind"] == "start"]
    assert set(start) == {"keys_version", "keys_source", "keys_unreadable", "enabled"}
    assert start["keys_source"] and start["enabled"] is True

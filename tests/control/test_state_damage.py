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

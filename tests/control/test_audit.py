"""The audit log: hash chain across segments, bounded size with an anchor, tamper detection,
torn-record recovery, and the `edgenode audit` commands."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from edgenode.control.audit import AuditLog, export, record_hash, verify
from edgenode.control.envelope import canonical
from edgenode.control.store import EffectorStore
from tests.conftest import EDGENODE, ROOT
from tests.control.conftest import Rig, RigFactory


def fill(directory: Path, records: int, *, segment_bytes: int = 2048,
         max_segments: int = 100) -> AuditLog:
    log = AuditLog(directory, segment_bytes=segment_bytes, max_segments=max_segments,
                   fsync=False)
    for i in range(records):
        log.append("state", {"from": "SAFE", "to": "ARMED", "n": i, "pad": "x" * 100})
    return log


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("audit-*.jsonl"))


def test_chain_continues_across_segments_and_a_reopen(tmp_path: Path) -> None:
    log = fill(tmp_path, 100)
    log.close()
    fill(tmp_path, 50).close()
    assert len(segment_files(tmp_path)) > 3
    report = verify(tmp_path)
    assert report.ok, report.broken
    kinds = [r["kind"] for r in export(tmp_path)]
    assert kinds.count("state") == 150
    # Each closed segment is announced by a `segment` record opening the next one.
    assert kinds.count("segment") == len(segment_files(tmp_path)) - 1
    assert (report.records, report.first_seq, report.last_seq) == (len(kinds), 0,
                                                                   len(kinds) - 1)


def test_editing_a_record_in_a_middle_segment_is_named(tmp_path: Path) -> None:
    fill(tmp_path, 100).close()
    victim = segment_files(tmp_path)[2]
    lines = victim.read_text().splitlines()
    record = json.loads(lines[1])
    record["data"]["to"] = "ENGAGED"
    lines[1] = json.dumps(record, separators=(",", ":"))
    victim.write_text("\n".join(lines) + "\n")
    report = verify(tmp_path)
    assert not report.ok
    assert report.broken.startswith(f"{victim.name} line 2 seq {record['seq']}: content")


def test_removing_a_record_breaks_the_chain_at_the_next_one(tmp_path: Path) -> None:
    fill(tmp_path, 60).close()
    victim = segment_files(tmp_path)[1]
    lines = victim.read_text().splitlines()
    victim.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    report = verify(tmp_path)
    assert report.broken is not None and f"{victim.name} line 3" in report.broken
    assert "prev does not match" in report.broken


def test_log_stays_bounded_and_verifies_from_the_anchor(tmp_path: Path) -> None:
    fill(tmp_path, 400, segment_bytes=2048, max_segments=4).close()
    files = segment_files(tmp_path)
    assert len(files) == 4
    assert sum(f.stat().st_size for f in files) <= 4 * 2048 + 1024
    anchor = json.loads((tmp_path / "anchor.json").read_text())
    report = verify(tmp_path)
    assert report.ok, report.broken
    last = list(export(tmp_path))[-1]
    assert report.first_seq == anchor["seq"] + 1 and report.last_seq == last["seq"]
    assert last["data"]["n"] == 399


def test_a_torn_last_record_is_cut_off_and_noted(tmp_path: Path) -> None:
    fill(tmp_path, 10).close()
    last = segment_files(tmp_path)[-1]
    with open(last, "ab") as fh:
        fh.write(b'{"seq":10,"t":1,"kind":"sta')  # power cut mid-write
    log = AuditLog(tmp_path, segment_bytes=2048, max_segments=100, fsync=False)
    log.close()
    report = verify(tmp_path)
    assert report.ok, report.broken
    records = list(export(tmp_path))
    assert records[-1]["kind"] == "recovery"
    assert records[-1]["data"] == {"torn_bytes": 27, "segment": last.name}


def test_effector_audits_commands_results_and_state_changes(rig: Rig) -> None:
    rig.arm_and_engage(duration_s=5)
    rig.send("alice", "disengage")
    rig.effector.stop()
    kinds = [r["kind"] for r in rig.audit]
    assert kinds.count("command") == 3 and kinds.count("result") == 3
    states = [(r["data"]["to"], r["data"]["reason"]) for r in rig.audit if r["kind"] == "state"]
    assert states[-1] == ("SAFE", "stopping") and len(states) == 4
    on_disk = list(export(rig.state_dir / "audit"))
    assert [r["hash"] for r in on_disk] == [r["hash"] for r in rig.audit]
    assert verify(rig.state_dir / "audit").ok


def test_audit_cli_verifies_exports_and_names_the_broken_record(tmp_path: Path) -> None:
    state = tmp_path / "state"
    log = AuditLog(state / "audit", segment_bytes=2048, max_segments=100, fsync=False)
    for i in range(40):
        log.append("state", {"n": i, "pad": "x" * 100}, t=1_700_000_000 + i)
    log.close()
    ok = subprocess.run([*EDGENODE, "audit", "verify", "--state-dir", str(state)],
                        capture_output=True, text=True, cwd=ROOT, timeout=30)
    records = len(list(export(state / "audit")))
    assert ok.returncode == 0 and f"chain intact: {records} records" in ok.stdout, ok.stderr
    out = subprocess.run([*EDGENODE, "audit", "--state-dir", str(state), "export", "--from",
                          "2023-11-14T22:13:30", "--to", "2023-11-14T22:13:40"],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 0, out.stderr
    exported = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["data"]["n"] for r in exported if r["kind"] == "state"] == list(range(10, 20))
    victim = segment_files(state / "audit")[1]
    victim.write_text(victim.read_text().replace('"n":', '"m":', 1))
    bad = subprocess.run([*EDGENODE, "audit", "verify", "--state-dir", str(state)],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert bad.returncode == 1
    assert f"BROKEN at {victim.name} line 2" in bad.stderr  # line 1: its segment record


def test_segment_records_carry_the_closed_segments_digest(tmp_path: Path) -> None:
    # Published like every record: the control room can prove each segment file complete.
    fill(tmp_path, 60).close()
    files = segment_files(tmp_path)
    notes = [r for r in export(tmp_path) if r["kind"] == "segment"]
    assert len(notes) == len(files) - 1
    for note, closed in zip(notes, files, strict=False):
        content = closed.read_bytes()
        assert note["data"]["closed"] == closed.name
        assert note["data"]["sha256"] == hashlib.sha256(content).hexdigest()
        assert note["data"]["bytes"] == len(content)
        assert note["data"]["last_seq"] == json.loads(content.splitlines()[-1])["seq"]


def test_tail_truncation_is_found_and_seqs_are_never_reused(make_rig: RigFactory,
                                                            tmp_path: Path) -> None:
    state = tmp_path / "state"
    rig = make_rig(state_dir=state)
    for _ in range(5):
        rig.send("alice", "arm", {"ttl_s": 10}, site="elsewhere")
    rig.effector.stop()
    audit = state / "audit"
    last = segment_files(audit)[-1]
    lines = last.read_bytes().splitlines(keepends=True)
    cut_from = json.loads(lines[-4])["seq"]
    written_up_to, last_hash = json.loads(lines[-1])["seq"], json.loads(lines[-1])["hash"]
    last.write_bytes(b"".join(lines[:-4]))  # the last four records removed
    # Offline: `audit verify` knows from the store what the node wrote.
    bad = subprocess.run([*EDGENODE, "audit", "verify", "--state-dir", str(state)],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert bad.returncode == 1, bad.stdout
    assert f"MISSING: seq {cut_from}..{written_up_to} removed from the tail" in bad.stderr
    # On restart: the node notes the truncation and never reuses those seqs.
    rig = make_rig(state_dir=state)
    rig.effector.stop()
    seqs = [r["seq"] for r in export(audit)]
    assert len(seqs) == len(set(seqs)) and max(seqs) > written_up_to
    assert not set(seqs) & set(range(cut_from, written_up_to + 1))
    report = verify(audit)
    assert report.broken is None and not report.ok
    assert report.missing and report.missing[0].startswith(
        f"seq {cut_from}..{written_up_to} removed before ")
    assert report.missing[0].endswith(" (the node found its log truncated on restart)")
    # The recovery record names the last record the node wrote, by seq and hash.
    (recovery,) = [r for r in export(audit) if r["kind"] == "recovery"]
    assert recovery["data"]["truncated"] == {"first_seq": cut_from, "last_seq": written_up_to,
                                             "last_hash": last_hash}


def test_head_segments_removed_behind_a_forged_anchor_are_found(make_rig: RigFactory,
                                                               tmp_path: Path) -> None:
    state = tmp_path / "state"
    rig = make_rig(state_dir=state)
    for _ in range(5):
        rig.send("alice", "arm", {"ttl_s": 10}, site="elsewhere")
    rig.effector.stop()
    audit = state / "audit"
    ok = subprocess.run([*EDGENODE, "audit", "verify", "--state-dir", str(state)],
                        capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert ok.returncode == 0, ok.stderr
    # Remove the first records and forge an anchor that makes the rest verify.
    first = segment_files(audit)[0]
    lines = first.read_bytes().splitlines(keepends=True)
    cut = json.loads(lines[3])
    first.write_bytes(b"".join(lines[4:]))
    (audit / "anchor.json").write_text(json.dumps({"seq": cut["seq"], "hash": cut["hash"]}))
    assert verify(audit).ok  # the chain alone cannot tell
    bad = subprocess.run([*EDGENODE, "audit", "verify", "--state-dir", str(state)],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert bad.returncode == 1
    assert "MISSING: anchor.json (seq 3) is not the anchor the node wrote" in bad.stderr
    rig = make_rig(state_dir=state)  # the node names it too
    assert "anchor.json" in rig.health.stages["effector"].reason


def test_an_anchor_other_than_the_nodes_own_is_named_with_both_seqs(tmp_path: Path) -> None:
    fill(tmp_path, 60, max_segments=3).close()  # old segments dropped: anchor.json written
    anchor = json.loads((tmp_path / "anchor.json").read_text())
    seq, digest = anchor["seq"], anchor["hash"]
    assert seq > 0
    assert verify(tmp_path, node_anchor=(seq, digest), check_anchor=True).missing == []
    for mine, written in (((seq + 7, digest), f"seq {seq + 7}"), (None, "none")):
        assert verify(tmp_path, node_anchor=mine, check_anchor=True).missing == [
            f"anchor.json (seq {seq}) is not the anchor the node wrote ({written}): "
            "records before it were removed"]


@pytest.mark.parametrize("data", ["truncated", ["truncated"], None])
def test_a_seq_jump_whose_record_data_is_not_an_object_is_a_break_not_a_crash(
        tmp_path: Path, data: object) -> None:
    """Whoever can write the log can chain a record of their own after the last one: one
    whose seq jumps with `data` that is no object must be reported, not crash `verify`."""
    fill(tmp_path, 3).close()
    path = segment_files(tmp_path)[0]
    last = json.loads(path.read_text().splitlines()[-1])
    record = {"seq": last["seq"] + 5, "t": last["t"], "kind": "recovery", "data": data,
              "prev": last["hash"]}
    record["hash"] = record_hash(record)
    with path.open("ab") as fh:
        fh.write(canonical(record) + b"\n")
    report = verify(tmp_path)
    assert report.broken == f"{path.name} line 4 seq {last['seq'] + 5}: expected seq 3"


def test_a_log_reopened_after_dropping_segments_keeps_its_anchor_and_its_chain(
        tmp_path: Path) -> None:
    fill(tmp_path, 60, max_segments=3).close()
    anchor = (tmp_path / "anchor.json").read_bytes()
    log = AuditLog(tmp_path, segment_bytes=2048, max_segments=3, fsync=False)
    log.append("state", {"after": "reopen"})
    log.close()
    assert log.damaged == []
    assert (tmp_path / "anchor.json").read_bytes() == anchor
    assert not list(tmp_path.glob("anchor.json.damaged-*"))
    report = verify(tmp_path)
    assert report.ok and report.records > 0, report


def test_a_record_with_a_duplicate_key_is_not_the_nodes(tmp_path: Path) -> None:
    fill(tmp_path, 5).close()
    path = segment_files(tmp_path)[0]
    lines = path.read_text().splitlines()
    # Same values, same hash, but a duplicate key a JSON reader resolves to the last one.
    lines[2] = lines[2].replace('"kind":"state"', '"kind":"junk","kind":"state"', 1)
    path.write_text("\n".join(lines) + "\n")
    report = verify(tmp_path)
    assert report.broken and "line 3" in report.broken and "canonical" in report.broken


def test_a_new_segment_is_written_through_as_the_first_was(tmp_path: Path) -> None:
    # Unbuffered in every segment: what append returned from is in the file, with no
    # buffer to lose in a crash or to write later under a stale seq.
    log = fill(tmp_path, 60)
    try:
        assert len(segment_files(tmp_path)) > 2
        last_line = segment_files(tmp_path)[-1].read_bytes().splitlines()[-1]
        assert json.loads(last_line)["data"]["n"] == 59
    finally:
        log.close()


def test_a_dropped_segment_leaves_an_anchor_naming_its_last_record(tmp_path: Path) -> None:
    told: list[tuple[int, str]] = []
    log = AuditLog(tmp_path, segment_bytes=2048, max_segments=3, fsync=False,
                   on_anchor=lambda seq, digest: told.append((seq, digest)))
    for i in range(80):
        log.append("state", {"n": i, "pad": "x" * 100})
    log.close()
    first_kept = segment_files(tmp_path)[0]
    number = int(first_kept.name[6:14]) - 1
    # The `segment` record at the head of the first kept segment describes the dropped one.
    note = json.loads(first_kept.read_bytes().splitlines()[0])
    assert note["kind"] == "segment"
    anchor = json.loads((tmp_path / "anchor.json").read_text())
    assert set(anchor) == {"segment", "seq", "hash", "t", "dropped_at"}
    assert anchor["segment"] == note["data"]["closed"] == f"audit-{number:08d}.jsonl"
    assert (anchor["seq"], anchor["hash"]) == (note["data"]["last_seq"],
                                                note["data"]["last_hash"])
    assert anchor["t"] <= note["t"] <= anchor["dropped_at"] <= time.time()
    assert told[-1] == (anchor["seq"], anchor["hash"])  # the node keeps its own copy
    assert not (tmp_path / "anchor.tmp").exists()


def test_a_damaged_line_at_a_segment_end_does_not_lose_its_anchor(tmp_path: Path) -> None:
    log = fill(tmp_path, 30, max_segments=3)
    log.close()
    oldest = segment_files(tmp_path)[0]
    last = json.loads(oldest.read_bytes().splitlines()[-1])
    with open(oldest, "ab") as fh:
        fh.write(b'{"torn\n5\n')  # bit rot: a broken line, then JSON that is no record
    log = AuditLog(tmp_path, segment_bytes=2048, max_segments=3, fsync=False)
    while oldest.exists():
        log.append("state", {"pad": "x" * 100})
    log.close()
    anchor = json.loads((tmp_path / "anchor.json").read_text())
    assert (anchor["segment"], anchor["seq"], anchor["hash"]) == (oldest.name, last["seq"],
                                                                  last["hash"])


def test_a_damaged_anchor_that_cannot_be_moved_aside_is_named_with_why(tmp_path: Path) -> None:
    (tmp_path / "anchor.json").write_text("{not json")
    now = int(time.time())
    for t in range(now, now + 5):  # where move_aside would put it: taken by a directory
        (tmp_path / f"anchor.json.damaged-{t}").mkdir()
        (tmp_path / f"anchor.json.damaged-{t}" / "x").touch()
    log = AuditLog(tmp_path, segment_bytes=2048, max_segments=4, fsync=False)
    log.close()
    assert len(log.damaged) == 1
    assert log.damaged[0].startswith(f"{tmp_path / 'anchor.json'} (")
    assert "; could not move it aside: [Errno 21] Is a directory" in log.damaged[0]


def test_a_missing_middle_segment_is_named_by_its_number(tmp_path: Path) -> None:
    fill(tmp_path, 100).close()
    segments = segment_files(tmp_path)
    gone = segments[2]
    gone.unlink()
    report = verify(tmp_path)
    assert report.broken == f"segment {gone.name[6:14]} is missing before {segments[3].name}"


def test_the_node_keeps_its_own_copy_of_each_anchor_it_writes(make_rig: RigFactory,
                                                             tmp_path: Path) -> None:
    state = tmp_path / "state"
    rig = make_rig(state_dir=state,
                   storage_settings={"audit_segment_kb": 16, "audit_max_segments": 2})
    for _ in range(120):  # ~40 kB of records: the oldest segments go
        rig.send("alice", "arm", {"ttl_s": 10}, site="elsewhere")
    rig.effector.stop()
    anchor = json.loads((state / "audit" / "anchor.json").read_text())
    store = EffectorStore(state / "control")
    try:
        copy = json.loads(store.get("audit_anchor") or "null")
    finally:
        store.close()
    assert copy == {"seq": anchor["seq"], "hash": anchor["hash"]}
    # A forged anchor further on (the records before it removed) is named with the seq of
    # the node's own.
    later = json.loads(segment_files(state / "audit")[0].read_bytes().splitlines()[3])
    (state / "audit" / "anchor.json").write_text(
        json.dumps({"seq": later["seq"], "hash": later["hash"]}))
    rig = make_rig(state_dir=state,
                   storage_settings={"audit_segment_kb": 16, "audit_max_segments": 2})
    assert rig.health.stages["effector"].reason == (
        f"state_damaged: {state / 'audit' / 'anchor.json'} is not the anchor this node wrote "
        f"(seq {anchor['seq']}): audit records before it were removed (state)")


@pytest.mark.parametrize("rot", [b'{"seq": "rot"}\n',  # JSON, but no record
                                 b'{"seq": 7, "hash\n'])  # not JSON at all
def test_a_damaged_last_line_is_named_and_the_chain_goes_on_from_the_one_before(
        tmp_path: Path, rot: bytes) -> None:
    fill(tmp_path, 5, segment_bytes=1 << 20).close()
    (segment,) = segment_files(tmp_path)
    sound = json.loads(segment.read_bytes().splitlines()[-1])
    with open(segment, "ab") as fh:
        fh.write(rot)
    log = AuditLog(tmp_path, segment_bytes=1 << 20, max_segments=4, fsync=False)
    assert log.damaged == [f"{segment} line 6: not a sound record"]
    record = log.append("state", {"after": "reopen"})
    log.close()
    assert (record["seq"], record["prev"]) == (sound["seq"] + 1, sound["hash"])

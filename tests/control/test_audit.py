"""The audit log: hash chain across segments, bounded size with an anchor, tamper detection,
torn-record recovery, and the `edgenode audit` commands."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from edgenode.control.audit import AuditLog, export, verify
from tests.conftest import EDGENODE, ROOT
from tests.control.conftest import Rig


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
    assert (report.records, report.first_seq, report.last_seq) == (150, 0, 149)


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
    assert report.first_seq == anchor["seq"] + 1 and report.last_seq == 399


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
    assert records[-1]["kind"] == "recovery" and records[-1]["data"]["torn_bytes"] == 27


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
    assert ok.returncode == 0 and "chain intact: 40 records" in ok.stdout, ok.stderr
    out = subprocess.run([*EDGENODE, "audit", "--state-dir", str(state), "export", "--from",
                          "2023-11-14T22:13:30", "--to", "2023-11-14T22:13:40"],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["data"]["n"] for line in out.stdout.splitlines()] == list(
        range(10, 20))
    victim = segment_files(state / "audit")[1]
    victim.write_text(victim.read_text().replace('"n":', '"m":', 1))
    bad = subprocess.run([*EDGENODE, "audit", "verify", "--state-dir", str(state)],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert bad.returncode == 1
    assert f"BROKEN at {victim.name} line 1" in bad.stderr

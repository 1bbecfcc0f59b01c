"""Hearing the drone and taking its bearing while a generator runs (issue 12).

doa-dev (../shared/data/acoustic/doa-dev, 14 cases; 10 with a generator as loud as the drone)
through `edgenode eval --clips`; machine-only cases made by the same recipe (tests/detect/
doa_synth.py) must give no drone block at all.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edgenode.detect.acoustic import AcousticDetector
from hal.ports.audio.wav import write_wav
from tests.conftest import EDGENODE
from tests.detect.doa_synth import Case, grid16, make_case, random_cases

FS = 24000
GRID_TOML = "name = \"grid16\"\npositions_m = [\n" + "".join(
    f"  [{x:.4f}, {y:.4f}, 0.0],\n" for x, y, _ in grid16()) + "]\n"


def run_eval(folder: Path) -> tuple[list[dict], dict]:
    done = subprocess.run([*EDGENODE, "eval", "--clips", str(folder), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return lines[:-1], lines[-1]["summary"]


@pytest.fixture(scope="module")
def doa_dev(request: pytest.FixtureRequest) -> tuple[list[dict], dict]:
    return run_eval(request.getfixturevalue("shared_data") / "acoustic" / "doa-dev")


def test_doa_dev_bearings_meet_the_targets_machine_or_not(
        doa_dev: tuple[list[dict], dict]) -> None:
    cases, summary = doa_dev
    assert len(cases) == 14
    groups = summary["groups"]
    assert set(groups) == {"20 dB, machine", "20 dB, no machine", "6 dB, machine",
                           "6 dB, no machine"}
    for name, group in groups.items():
        limit = 1.0 if name.startswith("20 dB") else 2.0
        assert group["bearing_rms_deg"] is not None, name
        assert group["bearing_rms_deg"] <= limit, (name, group)
    assert summary["worst_deg"] <= 5.0, cases
    # Every case detected but DRONE_010's two (see the strict expected failure below).
    missed = {c["file"] for c in cases if not c["detected"]}
    assert missed <= {"case_006.wav", "case_007.wav"}, missed
    assert all(c["first_detection_s"] < 6.0 for c in cases if c["detected"])


@pytest.mark.xfail(strict=True, reason="DRONE_010 beside a generator: what its blocks read "
                   "(88/176/265/354 Hz, 123/246/369 Hz) is the ground reflection's comb for "
                   "those geometries, not its rotor, and without the reflection no block hears "
                   "it at all; docs/detection.md limits")
def test_doa_dev_every_case_detected(doa_dev: tuple[list[dict], dict]) -> None:
    cases, summary = doa_dev
    assert summary["detected"] == 14, [c["file"] for c in cases if not c["detected"]]


def test_eval_scores_bearings_per_snr_and_machine_group(tmp_path: Path) -> None:
    """eval --clips with truth.csv: per case and per group, on cases made here (a synthetic
    rotor as the drone, so this runs without the shared recordings)."""
    from edgenode.detect.sitenoise import rotor_sound

    rotor = rotor_sound(6.0, FS, f0_hz=190.0, seed=4)
    cases = [Case(120.0, 25.0, 50.0, 20.0, None), Case(300.0, 20.0, 60.0, 20.0, 40.0, 130.0)]
    rows = ["file,azimuth_deg,snr_db,machine_azimuth_deg"]
    for i, case in enumerate(cases):
        write_wav(tmp_path / f"c{i}.wav", make_case(rotor, FS, case, seed=i), FS)
        machine = "" if case.machine_azimuth_deg is None else f"{case.machine_azimuth_deg}"
        rows.append(f"c{i}.wav,{case.azimuth_deg},{case.snr_db},{machine}")
    (tmp_path / "truth.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "grid.toml").write_text(GRID_TOML)
    per_case, summary = run_eval(tmp_path)
    assert [c["group"] for c in per_case] == ["20 dB, no machine", "20 dB, machine"]
    assert all(c["detected"] and abs(c["error_deg"]) < 2.0 for c in per_case), per_case
    assert summary["groups"]["20 dB, machine"]["detected"] == 1
    assert summary["groups"]["20 dB, no machine"]["bearing_rms_deg"] < 2.0


def machine_only_blocks(count: int, seed: int) -> list[tuple[int, float]]:
    """(case, time) of every drone block over `count` 6 s machine-only cases."""
    heard = []
    positions = grid16()
    for i, case in enumerate(random_cases(count, seed, machine_share=1.0, drift_pct=0.3)):
        pcm = make_case(None, FS, case, seed=seed * 7919 + i)
        detector = AcousticDetector(FS, 16, positions_m=positions)
        for start in range(0, len(pcm), 4096):
            heard += [(i, r.t) for r in detector.process(pcm[start:start + 4096], start / FS)
                      if r.drone]
    return heard


def test_a_generator_alone_is_never_a_drone() -> None:
    """One minute of machine-only cases (ten generators, 20 and 6 dB noise): no drone block."""
    assert machine_only_blocks(10, seed=101) == []


@pytest.mark.long
@pytest.mark.timeout(900)  # 100 cases made and heard: ~1.5 min idle, more on a loaded box
def test_ten_minutes_of_generators_alone_give_no_drone_block() -> None:
    """Case 7 (126.7 Hz drifting 0.3 %, 6 dB noise) gave seven drone blocks until a line
    between two short bins was masked in both (tests/detect/test_stationary.py)."""
    assert machine_only_blocks(100, seed=202) == []

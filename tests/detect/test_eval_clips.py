"""`edgenode eval --clips`: the acoustic detector scored on labelled real recordings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgenode.detect.sitenoise import rotor_sound, site_noise
from hal.ports.audio.wav import write_wav
from tests.conftest import EDGENODE

GAINS = ("-12", "0", "12")


def run_eval(folder: Path, *gains: str) -> tuple[list[dict], dict]:
    args = [*EDGENODE, "eval", "--clips", str(folder), "--json"]
    for gain in gains:
        args += ["--gain-db", gain]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return lines[:-1], lines[-1]["summary"]


@pytest.fixture(scope="module")
def halmstad(request: pytest.FixtureRequest) -> tuple[list[dict], dict]:
    folder = request.getfixturevalue("shared_data") / "acoustic" / "halmstad-dev"
    return run_eval(folder, *GAINS)


def test_halmstad_dev_false_alarms_and_gain_invariance_meet_the_limits(
        halmstad: tuple[list[dict], dict]) -> None:
    clips, summary = halmstad
    assert len(clips) == 30 * len(GAINS)
    classes = summary["classes"]
    for gain in GAINS:
        assert classes["background"][gain]["alarms"] <= 1
        assert classes["helicopter"][gain]["alarms"] <= 2
        assert classes["drone"][gain]["pd"] >= 0.9
    assert summary["gain_dependent_clips"] == []


def test_halmstad_dev_every_drone_clip_is_detected(halmstad: tuple[list[dict], dict]) -> None:
    _, summary = halmstad
    for gain in GAINS:
        assert summary["classes"]["drone"][gain]["pd"] == 1.0


def test_eval_reports_pd_and_false_alarms_per_class(tmp_path: Path) -> None:
    rate = 16000
    noise = np.concatenate(list(site_noise(6.0, rate, seed=3)))[:, 0]
    write_wav(tmp_path / "quiet.wav", noise, rate)
    write_wav(tmp_path / "rotor.wav", noise + 0.02 * rotor_sound(6.0, rate)[: len(noise)], rate)
    (tmp_path / "labels.csv").write_text("file,label\nquiet.wav,pump\nrotor.wav,drone\n")
    clips, summary = run_eval(tmp_path, "-12", "12")
    decided = {(c["file"], c["gain_db"]): c["drone"] for c in clips}
    assert decided == {("quiet.wav", -12.0): False, ("quiet.wav", 12.0): False,
                       ("rotor.wav", -12.0): True, ("rotor.wav", 12.0): True}
    assert summary["classes"]["drone"]["12"] == {"clips": 1, "alarms": 1, "pd": 1.0}
    assert summary["classes"]["pump"]["-12"] == {"clips": 1, "alarms": 0, "fa_rate": 0.0}


def test_eval_names_a_labels_file_without_the_label_column(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("file,class\na.wav,drone\n")
    done = subprocess.run([*EDGENODE, "eval", "--clips", str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "labels.csv" in done.stderr and "label" in done.stderr

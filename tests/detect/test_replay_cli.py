"""`edgenode replay --audio`: a recording through the acoustic chain, as a field engineer
runs it (a real subprocess)."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import numpy as np

from edgenode.detect.doa import SPEED_OF_SOUND_MPS, unit_vectors
from edgenode.detect.sitenoise import rotor_sound
from hal.acoustic import load_geometry
from hal.ports.audio.wav import write_wav
from tests.conftest import EDGENODE

RATE = 48000


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGENODE, "replay", *args], capture_output=True, text=True,
                          timeout=60)


def uma16_recording(path: Path, azimuth_deg: float, seconds: float = 5.0) -> Path:
    positions = load_geometry("uma16").positions_m
    source = rotor_sound(seconds, RATE, f0_hz=180.0, wander=0.02, seed=2)
    lead = positions @ unit_vectors(np.array(azimuth_deg), np.array(10.0)) / SPEED_OF_SOUND_MPS
    spec = np.fft.rfft(source)
    f = np.fft.rfftfreq(len(source), 1.0 / RATE)
    pcm = np.fft.irfft(spec[None, :] * np.exp(2j * np.pi * f[None, :] * lead[:, None]),
                       n=len(source)).T
    pcm = 0.05 * pcm + 0.004 * np.random.default_rng(1).standard_normal(pcm.shape)
    write_wav(path, pcm, RATE)
    return path


def test_replay_json_gives_one_object_per_block_with_bearings(tmp_path: Path) -> None:
    wav = uma16_recording(tmp_path / "drone.wav", azimuth_deg=120.0)
    done = replay("--audio", str(wav), "--geometry", "uma16", "--heading", "200", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    blocks, summary = lines[:-1], lines[-1]["summary"]
    assert len(blocks) == summary["blocks"] > 100
    assert all(set(b) == {"t", "drone", "score", "f0_hz", "bearing_deg"} for b in blocks)
    assert all(b2["t"] > b1["t"] for b1, b2 in itertools.pairwise(blocks))
    hits = [b for b in blocks if b["drone"]]
    # The detector needs about 2 s of wander before its first decision; from then on the
    # rotor is heard in most blocks.
    heard = [b for b in blocks if b["t"] >= hits[0]["t"]]
    assert hits[0]["t"] < 2.5 and len(hits) > 0.75 * len(heard), (hits[0]["t"], len(hits))
    assert abs(np.median([b["f0_hz"] for b in hits]) - 180.0) < 9.0
    bearings = [b["bearing_deg"] for b in hits if b["bearing_deg"] is not None]
    error = (np.array(bearings) - (200.0 + 120.0) % 360.0 + 180.0) % 360.0 - 180.0
    assert np.sqrt(np.mean(error**2)) < 3.0
    assert all(b["bearing_deg"] is None for b in blocks if not b["drone"])
    assert summary["drone"] is True and summary["channels"] == 16


def test_replay_text_without_geometry_has_no_bearings(tmp_path: Path) -> None:
    wav = uma16_recording(tmp_path / "drone.wav", azimuth_deg=10.0, seconds=3.0)
    done = replay("--audio", str(wav))
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert "DRONE" in done.stdout and "bearing" not in done.stdout
    assert out[-1].startswith("summary: ") and "real-time factor" in out[-1]


def test_replay_refuses_a_geometry_with_more_mics_than_channels(tmp_path: Path) -> None:
    wav = tmp_path / "stereo.wav"
    write_wav(wav, np.zeros((RATE, 2)), RATE)
    done = replay("--audio", str(wav), "--geometry", "uma16")
    assert done.returncode == 1
    assert "16 microphones" in done.stderr and "2 channels" in done.stderr


def test_replay_names_a_missing_file(tmp_path: Path) -> None:
    done = replay("--audio", str(tmp_path / "absent.wav"))
    assert done.returncode == 1
    assert "absent.wav" in done.stderr


def test_replay_takes_a_geometry_file(tmp_path: Path) -> None:
    geometry = tmp_path / "pair.toml"
    geometry.write_text('name = "pair"\npositions_m = [[0.0, 0.1, 0.0], [0.0, -0.1, 0.0]]\n')
    wav = tmp_path / "two.wav"
    write_wav(wav, 0.05 * np.tile(rotor_sound(3.0, RATE)[:, None], (1, 2)), RATE)
    done = replay("--audio", str(wav), "--geometry", str(geometry), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["summary"]["channels"] == 2

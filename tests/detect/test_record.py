"""`edgenode record` captures the configured devices' raw streams from the digital twin (radar
bytes off its pty, PCM off its microphone array), and `edgenode replay` reads what it wrote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from edgenode.cli.sim import demo_operator_key, sim_config, to_toml
from hal.ports.audio.wav import read_wav
from tests.conftest import EDGENODE, ROOT
from tests.sim.conftest import start_twin


def test_record_from_the_twin_then_replay_both_streams(tmp_path: Path) -> None:
    twin = start_twin(tmp_path / "sim", "one-drone-crossing")
    try:
        endpoints = json.loads((tmp_path / "sim" / "endpoints.json").read_text())
        config = sim_config(endpoints, "mqtt://127.0.0.1:1", demo_operator_key(tmp_path))
        config_path = tmp_path / "node.toml"
        config_path.write_text(to_toml(config))
        out = tmp_path / "capture"
        rec = subprocess.run([*EDGENODE, "record", "--config", str(config_path), "--seconds",
                              "3", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
    finally:
        twin.stop()
    assert rec.returncode == 0, rec.stdout + rec.stderr
    summary = json.loads((out / "record.json").read_text())
    assert summary["node"]["mast_heading_deg"] == 0.0

    # Radar: the bytes as they came, decoded by replay to the very points the twin sent.
    capture = out / "radar-ti-mmwave.dat"
    assert capture.stat().st_size == summary["radar"]["bytes"] > 0
    replay = subprocess.run([*EDGENODE, "replay", "--radar", str(capture), "--radar-model",
                             "ti-mmwave", "--json"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert replay.returncode == 0, replay.stderr
    lines = [json.loads(line) for line in replay.stdout.splitlines()]
    frames, last = lines[:-1], lines[-1]["summary"]
    assert len(frames) >= 20  # 10 frames a second for 3 s, less the first partial one
    sent = {}
    for line in (tmp_path / "sim" / "radar.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "points" in record:
            sent[record["frame"]] = record
    from hal.radar.ti_mmwave import TiMmwaveParser

    decoded = TiMmwaveParser().feed(capture.read_bytes())
    assert len(decoded) == len(frames)
    for frame in decoded:
        expected = np.array(sent[frame.frame_number]["points"], dtype=np.float32).reshape(-1, 6)
        np.testing.assert_array_equal(frame.points[:, :4], expected[:, :4])
    assert any(len(frame.points) for frame in decoded)  # frames with points, not only empty
    assert last["frames_rejected"] == 0

    # Audio: every channel of the array at its rate, for the time asked.
    samples, rate = read_wav(out / "audio.wav")
    assert rate == 48000 and samples.shape[1] == 16
    assert abs(len(samples) - 3 * rate) <= rate // 10
    assert float(np.abs(samples).max()) > 0.0
    replay = subprocess.run([*EDGENODE, "replay", "--audio", str(out / "audio.wav"),
                             "--geometry", "uma16", "--json"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    blocks = [json.loads(line) for line in replay.stdout.splitlines()]
    assert blocks[-1]["summary"]["channels"] == 16
    assert len(blocks) > 10

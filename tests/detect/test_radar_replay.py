"""Radar replay: a captured TI byte stream through parser, plots and tracker."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgenode.cli.radar_replay import replay_radar
from hal.radar import ti_mmwave
from tests.detect.test_plots import radar_points

CAPTURE = "radar/xwr16xx_processed_stream_2020_06_23T14_48_29_159"


def run(path: Path, as_json: bool = True) -> tuple[int, list]:
    out = io.StringIO()
    rc = replay_radar(path, "ti-mmwave", as_json, out)
    lines = out.getvalue().splitlines()
    return rc, [json.loads(line) for line in lines] if as_json else lines


def test_real_capture_decodes_every_frame_the_ti_reference_decodes(shared_data: Path) -> None:
    reference = [json.loads(line) for line in
                 (shared_data / f"{CAPTURE}.ti_reference.jsonl").read_text().splitlines()]
    rc, lines = run(shared_data / f"{CAPTURE}.dat")
    assert rc == 0
    frames, summary = lines[:-1], lines[-1]
    assert [f["frame"] for f in frames] == [r["frame_number"] for r in reference]
    assert [f["points"] for f in frames] == [r["num_detected_obj"] for r in reference]
    assert summary["summary"]["frames"] == len(reference) == 102
    assert summary["summary"]["bytes_skipped"] == 0
    assert summary["summary"]["frames_rejected"] == 0
    assert frames[0]["t"] == 0.0 and frames[1]["t"] == pytest.approx(0.1)
    # A static indoor scene: plots every frame, on a 2D radar (no elevation).
    assert all(f["plots"] for f in frames)
    plot = frames[0]["plots"][0]
    assert plot["elevation_deg"] is None and plot["range_m"]["value"] < 5.0
    news = [e for f in frames for e in f["events"] if e["type"] == "new"]
    assert news and all(e["before"] is None for e in news)


def test_synthetic_capture_with_line_noise_resyncs_and_tracks_a_drone(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    capture = bytearray()
    start, velocity = np.array([-10.0, 40.0, 15.0]), np.array([3.0, -1.0, 0.0])
    for k in range(40):
        p = start + velocity * 0.1 * k
        pts = np.array(radar_points(p, float(velocity @ p / np.linalg.norm(p)), rng),
                       dtype=np.float32)
        capture += ti_mmwave.encode_frame(500 + k, pts)
        if k % 10 == 5:
            capture += bytes(rng.integers(0, 256, 37, dtype=np.uint8))  # line noise
    path = tmp_path / "drone.dat"
    path.write_bytes(bytes(capture))
    rc, lines = run(path)
    assert rc == 0
    summary = lines[-1]["summary"]
    assert summary["frames"] == 40 and summary["bytes_skipped"] >= 4 * 37
    frames = lines[:-1]
    assert frames[-1]["frame"] == 539 and frames[-1]["t"] == pytest.approx(3.9)
    events = [e for f in frames for e in f["events"]]
    assert [e["type"] for e in events].count("new") == 1
    last = events[-1]["after"]
    truth = start + velocity * 3.9
    assert last["range_m"]["value"] == pytest.approx(np.linalg.norm(truth), abs=1.0)
    assert last["azimuth_deg"]["value"] == pytest.approx(
        math.degrees(math.atan2(truth[0], truth[1])) % 360.0, abs=2.0)
    assert last["speed_mps"] == pytest.approx(np.linalg.norm(velocity), abs=1.0)


def test_text_output_ends_with_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "empty-frames.dat"
    path.write_bytes(b"".join(ti_mmwave.encode_frame(k, np.zeros((0, 6), np.float32))
                              for k in range(3)))
    rc, lines = run(path, as_json=False)
    assert rc == 0
    assert lines[0].startswith("frame 0 t 0.00 s: 0 points, 0 plots")
    assert lines[-1].startswith("summary: frames 3, bytes_skipped 0, frames_rejected 0")


def test_missing_capture_fails_with_1(tmp_path: Path) -> None:
    rc, lines = run(tmp_path / "nope.dat")
    assert rc == 1 and lines == []


def test_a_file_without_a_frame_fails_and_says_what_to_check(tmp_path: Path, caplog) -> None:
    # Issue 22.19: garbage replayed "successfully" with an all-zero summary.
    path = tmp_path / "not-radar.dat"
    path.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    rc, lines = run(path, as_json=False)
    assert rc == 1 and lines[-1].startswith("summary: frames 0")
    assert "no ti-mmwave frame in" in caplog.text and "--radar-model" in caplog.text

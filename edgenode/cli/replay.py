"""`edgenode replay` (a recording through the acoustic or radar chain), `edgenode eval
--clips` (the acoustic detector scored on a folder of labelled clips), `edgenode eval
--truth/--run` (the daemon scored against the digital twin's ground truth, in
edgenode.cli.eval_twin) and `edgenode record` (raw device streams to files, edgenode.cli.record).

Replay and eval --clips read files only; neither touches devices, the broker or the relay.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from edgenode.detect.acoustic import AcousticDetector, AcousticResult

log = logging.getLogger(__name__)

# Blocks as an audio port would deliver them: the detector buffers to its own window.
PORT_BLOCK_FRAMES = 4096


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("replay", cmd_replay, "run the acoustic chain over a WAV recording, or the radar "
            "chain over a captured byte stream")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--audio", type=Path, metavar="FILE.wav", help="multichannel WAV")
    source.add_argument("--radar", type=Path, metavar="FILE", help="radar data-port capture")
    source.add_argument("--remoteid", type=Path, metavar="FILE",
                        help="Remote ID capture (pcap, pcapng, btsnoop: Wi-Fi, BLE, HCI)")
    p.add_argument("--radar-model", default="ti-mmwave", help="radar protocol (--radar)")
    p.add_argument("--geometry", metavar="NAME|FILE",
                   help="microphone geometry, shipped name or TOML file, for bearings")
    p.add_argument("--heading", type=float, default=0.0, metavar="DEG",
                   help="mast heading, degrees clockwise from true north (default 0)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = add("eval", cmd_eval, "score the acoustic detector on a folder of labelled clips "
            "(labels.csv with file,label columns), or the daemon against the digital twin's "
            "ground truth (--truth with --events, or --run SCENARIO)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--clips", type=Path, metavar="DIR",
                      help="folder holding labels.csv and the WAV clips, or truth.csv with "
                      "drone azimuths (file,azimuth_deg,snr_db[,machine_azimuth_deg]) and "
                      "multichannel cases: then bearings are scored too")
    what.add_argument("--truth", type=Path, metavar="FILE",
                      help="the twin's truth.jsonl (STATE/sim/truth.jsonl of run --sim)")
    what.add_argument("--run", metavar="SCENARIO",
                      help="run the daemon on the twin for the scenario's duration and score "
                      "it (a scenario file or the name of one in hardware/scenarios)")
    p.add_argument("--gain-db", type=float, action="append", metavar="DB",
                   help="--clips: apply this gain before detection; repeat for several "
                   "(default 0)")
    p.add_argument("--geometry", metavar="NAME|FILE",
                   help="--clips with truth.csv: microphone geometry (default: the one "
                   "*.toml in the folder)")
    p.add_argument("--heading", type=float, default=0.0, metavar="DEG",
                   help="--clips with truth.csv: mast heading (default 0)")
    p.add_argument("--events", type=Path, metavar="FILE",
                   help="--truth: the daemon's track events, JSON lines (MQTT payloads)")
    p.add_argument("--speed", type=float, metavar="X",
                   help="--run: run the twin X times faster (default 1); --truth: the "
                   "speed it ran at (default: from endpoints.json beside the truth file)")
    p.add_argument("--seconds", type=float, metavar="N",
                   help="--run: scenario seconds to run (default: the scenario's duration)")
    p.add_argument("--broker", metavar="URL",
                   help="--run: MQTT broker (default: a private Mosquitto on a free port)")
    p.add_argument("--out", metavar="DIR",
                   help="--run: keep truth, events and the daemon's log here (default: a "
                   "new temporary directory)")
    p.add_argument("--second-drone", action="store_true",
                   help="--run: the daemon also looks for a second drone beside one heard "
                   "nearby (run --sim --second-drone; docs/detection.md)")
    p.add_argument("--gate-deg", type=float, default=10.0, metavar="DEG",
                   help="--truth/--run: bearing gate for a track to count on a target "
                   "(default 10)")
    p.add_argument("--json", action="store_true",
                   help="--clips: one JSON object per clip and gain, then a summary object; "
                   "--truth/--run: the score as one JSON object")

    from edgenode.cli.record import register as register_record

    register_record(add)


# ---------------------------------------------------------------- replay

def cmd_replay(args: argparse.Namespace) -> int:
    if args.remoteid is not None:
        from edgenode.cli.remoteid_replay import replay_remoteid

        return replay_remoteid(args.remoteid, args.json, sys.stdout)
    if args.radar is not None:
        from edgenode.cli.radar_replay import replay_radar

        return replay_radar(args.radar, args.radar_model, args.json, sys.stdout)
    return replay_audio(args.audio, geometry=args.geometry, heading_deg=args.heading,
                        as_json=args.json, out=sys.stdout)


def replay_audio(path: Path, *, geometry: str | None, heading_deg: float, as_json: bool,
                 out: TextIO) -> int:
    from hal.ports.audio.wav import read_wav

    try:
        samples, rate = read_wav(path)
    except (OSError, ValueError) as exc:
        log.error("replay: cannot read WAV %s: %s", path, exc)
        return 1
    positions = None
    if geometry:
        positions = _load_positions(geometry)
        if positions.shape[0] > samples.shape[1]:
            log.error("replay: geometry %s has %d microphones but %s has %d channels",
                      geometry, positions.shape[0], path, samples.shape[1])
            return 1
        samples = samples[:, : positions.shape[0]]
    detector = AcousticDetector(rate, samples.shape[1], positions_m=positions,
                                heading_deg=heading_deg)
    started = time.perf_counter()
    results = list(_run(detector, samples, rate))
    elapsed = time.perf_counter() - started
    for r in results:
        bearing = r.bearings[0].azimuth_deg if r.bearings else None
        if as_json:
            out.write(json.dumps({"t": round(r.t, 4), "drone": r.drone, "score": r.score,
                                  "f0_hz": r.f0_hz,
                                  "bearing_deg": None if bearing is None else round(bearing, 2)})
                      + "\n")
        else:
            f0 = "-" if r.f0_hz is None else f"{r.f0_hz:7.1f} Hz"
            brg = "" if bearing is None else f"  bearing {bearing:6.1f} deg"
            out.write(f"{r.t:8.3f} s  {'DRONE' if r.drone else '-----'}  score {r.score:6.3f}"
                      f"  f0 {f0}{brg}\n")
    duration = len(samples) / rate
    summary = _summary(results, duration, elapsed, rate, samples.shape[1])
    if as_json:
        out.write(json.dumps({"summary": summary}) + "\n")
    else:
        first = summary["first_detection_s"]
        out.write(f"summary: {summary['blocks']} blocks, {summary['drone_blocks']} drone, "
                  f"first detection {'none' if first is None else f'{first:.2f} s'}, "
                  f"median f0 {summary['median_f0_hz']} Hz, {duration:.1f} s of audio at "
                  f"{rate} Hz x {samples.shape[1]} ch in {elapsed:.2f} s "
                  f"(real-time factor {summary['real_time_factor']})\n")
    return 0


def _load_positions(geometry: str) -> np.ndarray:
    from hal.acoustic import load_geometry

    return np.asarray(load_geometry(geometry).positions_m, dtype=np.float64)


def _run(detector: AcousticDetector, samples: np.ndarray,
         rate: int) -> Iterator[AcousticResult]:
    for start in range(0, len(samples), PORT_BLOCK_FRAMES):
        yield from detector.process(samples[start:start + PORT_BLOCK_FRAMES], start / rate)


def _summary(results: list[AcousticResult], duration: float, elapsed: float, rate: int,
             channels: int) -> dict[str, object]:
    drone = [r for r in results if r.drone]
    f0s = [r.f0_hz for r in drone if r.f0_hz is not None]
    return {"blocks": len(results), "drone_blocks": len(drone), "drone": bool(drone),
            "first_detection_s": round(drone[0].t, 3) if drone else None,
            "median_f0_hz": round(float(np.median(f0s)), 1) if f0s else None,
            "max_score": round(max((r.score for r in results), default=0.0), 4),
            "duration_s": round(duration, 3), "sample_rate_hz": rate, "channels": channels,
            "real_time_factor": round(elapsed / duration, 5) if duration else None}


# ---------------------------------------------------------------- eval --clips

@dataclass(frozen=True)
class Clip:
    file: str
    drone: bool  # ground truth
    cls: str  # reporting class: subclass where labels.csv has one, else the label


@dataclass(frozen=True)
class ClipDecision:
    clip: Clip
    gain_db: float
    drone: bool  # a clip is a drone when any analysis block says drone
    max_score: float
    f0_hz: float | None
    first_detection_s: float | None


def read_labels(folder: Path) -> list[Clip]:
    path = folder / "labels.csv"
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"file", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; need file,label")
        clips = []
        for line, row in enumerate(reader, start=2):
            name, label = (row.get("file") or "").strip(), (row.get("label") or "").strip()
            if not name or not label:
                raise ValueError(f"{path} line {line}: empty file or label")
            cls = (row.get("subclass") or "").strip() or label
            clips.append(Clip(file=name, drone=label.lower() == "drone", cls=cls.lower()))
    return clips


def decide_clip(path: Path, gain_db: float) -> tuple[bool, float, float | None, float | None]:
    """(drone, max score up to the decision, f0 at the first detection, its time)."""
    from hal.ports.audio.wav import read_wav

    samples, rate = read_wav(path)
    # Float all the way: a gain may push peaks past full scale without clipping them.
    samples = samples * np.float32(10.0 ** (gain_db / 20.0))
    detector = AcousticDetector(rate, samples.shape[1])
    max_score = 0.0
    for r in _run(detector, samples, rate):
        max_score = max(max_score, r.score)
        if r.drone:  # the clip's decision is made: no need to listen further
            return True, max_score, r.f0_hz, r.t
    return False, max_score, None, None


def cmd_eval(args: argparse.Namespace) -> int:
    if args.clips is None:
        from edgenode.cli.eval_twin import cmd_eval_twin

        return cmd_eval_twin(args)
    folder: Path = args.clips
    from edgenode.cli import eval_doa

    if eval_doa.is_doa_folder(folder):
        return cmd_eval_doa(args)
    try:
        clips = read_labels(folder)
    except (OSError, ValueError) as exc:
        log.error("eval: %s", exc)
        return 1
    gains = args.gain_db or [0.0]
    decisions: list[ClipDecision] = []
    for clip in clips:
        for gain in gains:
            try:
                drone, score, f0, first = decide_clip(folder / clip.file, gain)
            except (OSError, ValueError) as exc:
                log.error("eval: clip %s: %s", folder / clip.file, exc)
                return 1
            d = ClipDecision(clip, gain, drone, score, f0, first)
            decisions.append(d)
            _print_decision(d, args.json)
    summary = summarise(decisions, gains)
    if args.json:
        print(json.dumps({"summary": summary}))
    else:
        _print_summary(summary, gains)
    return 0


def cmd_eval_doa(args: argparse.Namespace) -> int:
    """eval --clips on direction-finding cases (truth.csv with azimuths)."""
    from edgenode.cli import eval_doa

    folder: Path = args.clips
    try:
        cases = eval_doa.read_truth(folder)
        positions = _load_positions(eval_doa.geometry_for(folder, args.geometry))
    except (OSError, ValueError) as exc:
        log.error("eval: %s", exc)
        return 1
    outcomes = []
    for case in cases:
        for gain in args.gain_db or [0.0]:
            try:
                o = eval_doa.run_case(folder / case.file, case, positions, args.heading, gain,
                                      _run)
            except (OSError, ValueError) as exc:
                log.error("eval: case %s: %s", folder / case.file, exc)
                return 1
            outcomes.append(o)
            print(eval_doa.outcome_json(o) if args.json else eval_doa.outcome_line(o),
                  flush=True)
    summary = eval_doa.summarise(outcomes)
    if args.json:
        print(json.dumps({"summary": summary}))
    else:
        print("\n".join(eval_doa.summary_lines(summary)))
    return 0


def _print_decision(d: ClipDecision, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"file": d.clip.file, "class": d.clip.cls, "truth_drone": d.clip.drone,
                          "gain_db": d.gain_db, "drone": d.drone,
                          "max_score": round(d.max_score, 4),
                          "f0_hz": None if d.f0_hz is None else round(d.f0_hz, 1),
                          "first_detection_s": None if d.first_detection_s is None
                          else round(d.first_detection_s, 3)}), flush=True)
    else:
        verdict = "DRONE" if d.drone else "-----"
        ok = "ok" if d.drone == d.clip.drone else "WRONG"
        f0 = "" if d.f0_hz is None else f"  f0 {d.f0_hz:6.1f} Hz"
        print(f"{d.clip.file:28s} {d.clip.cls:12s} {d.gain_db:+5.1f} dB  {verdict}  "
              f"max score {d.max_score:6.3f}{f0}  {ok}", flush=True)


def summarise(decisions: list[ClipDecision], gains: list[float]) -> dict[str, object]:
    """Per class and gain: clips, alarms, rate (Pd for drones, false-alarm rate otherwise);
    and the clips whose decision changes with gain."""
    classes: dict[str, dict[str, dict[str, object]]] = {}
    for cls in sorted({d.clip.cls for d in decisions}):
        per_gain: dict[str, dict[str, object]] = {}
        for gain in gains:
            ds = [d for d in decisions if d.clip.cls == cls and d.gain_db == gain]
            alarms = sum(d.drone for d in ds)
            truth = ds[0].clip.drone if ds else False
            per_gain[f"{gain:g}"] = {"clips": len(ds), "alarms": alarms,
                                     "pd" if truth else "fa_rate":
                                         round(alarms / len(ds), 3) if ds else None}
        classes[cls] = per_gain
    by_clip: dict[str, set[bool]] = {}
    for d in decisions:
        by_clip.setdefault(d.clip.file, set()).add(d.drone)
    unstable = sorted(name for name, seen in by_clip.items() if len(seen) > 1)
    return {"classes": classes, "gains_db": gains, "gain_dependent_clips": unstable,
            "clips": len(by_clip)}


def _print_summary(summary: dict[str, object], gains: list[float]) -> None:
    classes = summary["classes"]
    assert isinstance(classes, dict)
    header = "class         " + "".join(f"{g:+6.1f} dB        " for g in gains)
    print(header)
    for cls, per_gain in classes.items():
        cells = []
        for gain in gains:
            cell = per_gain[f"{gain:g}"]
            name = "Pd" if "pd" in cell else "FA"
            rate = cell.get("pd", cell.get("fa_rate"))
            cells.append(f"{name} {cell['alarms']:>2}/{cell['clips']:<2} ({rate:.2f})  ")
        print(f"{cls:13s} " + "".join(cells))
    unstable = summary["gain_dependent_clips"]
    print(f"decisions that change with gain: {', '.join(unstable) if unstable else 'none'}")

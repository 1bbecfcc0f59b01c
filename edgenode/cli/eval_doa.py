"""`edgenode eval --clips DIR` where DIR holds a `truth.csv` of drone azimuths (direction-finding
cases such as ../shared/data/acoustic/doa-dev): per case, whether the acoustic chain heard a
drone within the recording and how far its bearing (the median of the drone blocks' bearings)
lies from the truth; per SNR and machine / no-machine group, the cases detected and the
bearing RMS. Reads files only.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgenode.detect.acoustic import AcousticDetector, AcousticResult

    Blocks = Callable[[AcousticDetector, np.ndarray, int], Iterator[AcousticResult]]

TRUTH_COLUMNS = {"file", "azimuth_deg", "snr_db"}


@dataclass(frozen=True)
class DoaCase:
    file: str
    azimuth_deg: float  # array frame, clockwise from x
    snr_db: float
    machine_azimuth_deg: float | None  # None: no machine in this case

    @property
    def group(self) -> str:
        machine = "machine" if self.machine_azimuth_deg is not None else "no machine"
        return f"{self.snr_db:g} dB, {machine}"


@dataclass(frozen=True)
class DoaOutcome:
    case: DoaCase
    gain_db: float
    detected: bool
    first_detection_s: float | None
    drone_blocks: int
    bearings: int
    error_deg: float | None  # median bearing minus truth, wrapped to (-180, 180]


def is_doa_folder(folder: Path) -> bool:
    return (folder / "truth.csv").is_file() and not (folder / "labels.csv").is_file()


def read_truth(folder: Path) -> list[DoaCase]:
    path = folder / "truth.csv"
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = TRUTH_COLUMNS - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; need "
                             "file,azimuth_deg,snr_db (machine_azimuth_deg optional)")
        cases = []
        for line, row in enumerate(reader, start=2):
            try:
                machine = (row.get("machine_azimuth_deg") or "").strip()
                cases.append(DoaCase(file=row["file"].strip(),
                                     azimuth_deg=float(row["azimuth_deg"]),
                                     snr_db=float(row["snr_db"]),
                                     machine_azimuth_deg=float(machine) if machine else None))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path} line {line}: {exc}") from exc
    return cases


def geometry_for(folder: Path, geometry: str | None) -> str:
    """The --geometry given, else the one TOML geometry file in the folder."""
    if geometry:
        return geometry
    found = sorted(folder.glob("*.toml"))
    if len(found) != 1:
        raise ValueError(f"{folder}: {len(found)} geometry files (*.toml) found; pass "
                         "--geometry NAME|FILE")
    return str(found[0])


def wrap_deg(d: float) -> float:
    return (d + 180.0) % 360.0 - 180.0


def run_case(path: Path, case: DoaCase, positions: np.ndarray, heading_deg: float,
             gain_db: float, feed: Blocks) -> DoaOutcome:
    """`feed` feeds a recording through a detector as the audio port would (replay's)."""
    from edgenode.detect.acoustic import AcousticDetector
    from hal.ports.audio.wav import read_wav

    samples, rate = read_wav(path)
    if samples.shape[1] < len(positions):
        raise ValueError(f"{path}: {samples.shape[1]} channels, the geometry has "
                         f"{len(positions)} microphones")
    samples = samples[:, : len(positions)] * np.float32(10.0 ** (gain_db / 20.0))
    detector = AcousticDetector(rate, samples.shape[1], positions_m=positions,
                                heading_deg=heading_deg)
    first: float | None = None
    blocks = 0
    errors: list[float] = []
    for r in feed(detector, samples, rate):
        if not r.drone:
            continue
        blocks += 1
        first = r.t if first is None else first
        errors += [wrap_deg(b.azimuth_deg - heading_deg - case.azimuth_deg) for b in r.bearings]
    error = float(np.median(errors)) if errors else None
    return DoaOutcome(case, gain_db, first is not None, first, blocks, len(errors), error)


def summarise(outcomes: list[DoaOutcome]) -> dict[str, object]:
    """Per group (SNR, machine or not) and gain: cases, detected, bearing RMS and worst error
    over the detected cases that gave a bearing."""
    groups: dict[str, dict[str, object]] = {}
    keys = sorted({(o.case.machine_azimuth_deg is not None, -o.case.snr_db, o.gain_db)
                   for o in outcomes})
    for machine, neg_snr, gain in keys:
        os_ = [o for o in outcomes if (o.case.machine_azimuth_deg is not None) == machine
               and o.case.snr_db == -neg_snr and o.gain_db == gain]
        errs = [o.error_deg for o in os_ if o.error_deg is not None]
        name = os_[0].case.group + (f", {gain:+g} dB gain" if gain else "")
        groups[name] = {
            "cases": len(os_), "detected": sum(o.detected for o in os_),
            "with_bearing": len(errs),
            "bearing_rms_deg": round(math.sqrt(sum(e * e for e in errs) / len(errs)), 2)
            if errs else None,
            "worst_deg": round(max(abs(e) for e in errs), 2) if errs else None}
    everything = [o.error_deg for o in outcomes if o.error_deg is not None]
    return {"groups": groups, "cases": len(outcomes),
            "detected": sum(o.detected for o in outcomes),
            "worst_deg": round(max(abs(e) for e in everything), 2) if everything else None}


def outcome_json(o: DoaOutcome) -> str:
    return json.dumps({"file": o.case.file, "group": o.case.group, "gain_db": o.gain_db,
                       "truth_azimuth_deg": o.case.azimuth_deg, "detected": o.detected,
                       "first_detection_s": None if o.first_detection_s is None
                       else round(o.first_detection_s, 3),
                       "drone_blocks": o.drone_blocks, "bearings": o.bearings,
                       "error_deg": None if o.error_deg is None else round(o.error_deg, 2)})


def outcome_line(o: DoaOutcome) -> str:
    first = "not detected" if o.first_detection_s is None else \
        f"first {o.first_detection_s:5.2f} s"
    err = "no bearing" if o.error_deg is None else f"error {o.error_deg:+7.2f} deg"
    return (f"{o.case.file:16s} {o.case.group:22s} {o.gain_db:+5.1f} dB  {first:14s} "
            f"{o.drone_blocks:3d} drone blocks  {err}")


def summary_lines(summary: dict[str, object]) -> list[str]:
    groups = summary["groups"]
    assert isinstance(groups, dict)
    lines = [f"{'group':34s} {'detected':>9s} {'bearing RMS':>12s} {'worst':>8s}"]
    for name, g in groups.items():
        rms = "-" if g["bearing_rms_deg"] is None else f"{g['bearing_rms_deg']:.2f} deg"
        worst = "-" if g["worst_deg"] is None else f"{g['worst_deg']:.2f}"
        lines.append(f"{name:34s} {g['detected']:>4d} / {g['cases']:<2d} {rms:>12s} {worst:>8s}")
    lines.append(f"all: {summary['detected']} / {summary['cases']} detected, worst bearing "
                 f"error {summary['worst_deg']} deg")
    return lines

"""Acoustic chain speed: real-time factor for 16 channels at 48 kHz on one core.

Target (issue 5): RTF <= 0.02, i.e. the chain uses at most 2 % of real time. The recording is
a wandering rotor comb arriving on the UMA-16 with true inter-microphone delays plus
independent noise, so detection and direction finding both run (DOA only on detecting
blocks, over the harmonic bins).
"""

from __future__ import annotations

import os
import time

import numpy as np

from edgenode.detect.acoustic import AcousticDetector
from edgenode.detect.doa import SPEED_OF_SOUND_MPS, unit_vectors
from edgenode.detect.sitenoise import rotor_sound
from hal.acoustic import load_geometry

RATE = 48000
SECONDS = 20.0
PORT_BLOCK = 4096
TARGET_RTF = 0.02


def recording(positions: np.ndarray) -> np.ndarray:
    source = rotor_sound(SECONDS, RATE, f0_hz=190.0, wander=0.02)
    lead = positions @ unit_vectors(np.array(140.0), np.array(20.0)) / SPEED_OF_SOUND_MPS
    spec = np.fft.rfft(source)
    f = np.fft.rfftfreq(len(source), 1.0 / RATE)
    pcm = np.fft.irfft(spec[None, :] * np.exp(2j * np.pi * f[None, :] * lead[:, None]),
                       n=len(source)).T * 0.01
    pcm += 0.01 * np.random.default_rng(0).standard_normal(pcm.shape)
    return pcm.astype(np.float32)


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    positions = load_geometry("uma16").positions_m
    pcm = recording(positions)
    for label, geometry in (("detection + DOA", positions), ("detection only", None)):
        det = AcousticDetector(RATE, 16, positions_m=geometry, heading_deg=0.0)
        started = time.process_time()
        results = []
        for start in range(0, len(pcm), PORT_BLOCK):
            results += det.process(pcm[start:start + PORT_BLOCK], start / RATE)
        cpu = time.process_time() - started
        drone = sum(r.drone for r in results)
        bearings = sum(len(r.bearings) for r in results)
        rtf = cpu / SECONDS
        print(f"acoustic chain, {label}: 16 ch x {RATE} Hz, {SECONDS:.0f} s of audio in "
              f"{cpu:.3f} s CPU -> real-time factor {rtf:.4f} (target <= {TARGET_RTF}); "
              f"{len(results)} blocks, {drone} drone, {bearings} bearings; "
              f"{cpu / max(len(results), 1) * 1e3:.2f} ms per block")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

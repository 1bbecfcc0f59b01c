"""The acoustic detector's physical settings, shared by its paths (comb, line pairs, beams,
stationary-line mask)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AcousticParams:
    """Physical settings of the detector; defaults suit small multirotors."""

    window_s: float = 0.09  # ~11 Hz bins: resolves an 80 Hz comb, follows wandering lines
    hop_fraction: float = 0.5  # of the window
    f0_min_hz: float = 80.0
    f0_max_hz: float = 800.0
    band_hz: tuple[float, float] = (60.0, 8000.0)
    harmonics: int = 16
    floor_span_hz: float = 250.0  # CFAR reference window across frequency
    peak_db: float = 6.0  # a tonal peak stands this far above the local floor
    line_window_s: float = 1.0  # fine spectrum for the stationary-line mask (1 Hz bins)
    line_every_s: float = 0.5
    line_average_s: float = 3.0
    line_db: float = 10.0  # a stationary line stands this far above its fine floor
    stationary_memory_s: float = 60.0  # how long a stationary line stays masked
    line_held_s: float = 2.5  # faint path: a line is steady once it held its fine bin ...
    line_held: float = 0.6  # ... in this share of the refreshes over line_held_s
    # Helicopter: a dense low comb (main-rotor blade-pass 8-30 Hz) vetoes drone decisions.
    heli_f0_hz: tuple[float, float] = (8.0, 30.0)
    heli_harmonics: int = 12
    heli_db: float = 6.0
    heli_hits: int = 9  # of heli_harmonics; a drone comb (f0 >= 80 Hz) can fill at most 4
    heli_hold_s: float = 3.0
    # Short-bin occupancy: a line present in one 11 Hz bin most of the last 1.5 s is steady
    # at this resolution too (catches machines switching on before the fine mask forms).
    occupancy_s: float = 1.5
    occupancy_level: float = 0.5
    warmup_s: float = 2.0  # no decision before the stationary mask has formed
    persist_s: float = 0.5  # evidence is integrated over this long
    miss_harmonics: int = 8  # missing harmonics among the first 8 cost miss_penalty each
    miss_penalty: float = 1.0
    prefer_low: float = 0.8  # take the lowest f0 with this share of the best strength
    block_hits: int = 3  # harmonics that must carry an unmasked tonal peak
    threshold: float = 0.9  # on the integrated score
    wander_min: float = 0.003  # detrended rms of log f0 on the track (0.3 %)
    # Co-wandering line pair (any band, any ratio): see LinePairs.
    pair_db: float = 10.0  # both lines stand this far above the floor
    pair_window_s: float = 1.0  # two lines are weaker evidence than a comb: watch them longer
    pair_presence: float = 0.75  # share of the window's blocks that must hold the pair
    pair_lines: int = 6  # strongest free lines per block considered
    pair_min_ratio: float = 1.1  # distinct lines, not one line's two halves
    pair_precision_bins: float = 0.25  # an interpolated line's frequency error, in bins
    # Delay-and-sum beams on arrays of beam_min_mics or more (see BeamBank).
    beam_min_mics: int = 4
    beams: int = 12  # azimuths around the horizon: 30 degrees, under the beamwidth at 3 kHz
    beam_elevation_deg: float = 10.0
    beam_select_hz: float = 3000.0  # tonal evidence for choosing a beam is taken below this
    beam_select_s: float = 1.0  # how long the choice of beam integrates that evidence
    beam_select_every: int = 4  # blocks (~0.18 s); the choice integrates over beam_select_s
    # A second drone beside the one the blocks hear (second_rotor.py): off unless the node's
    # config asks ([acoustic] second_drone): with it the chain is at the speed bench's limit.
    second_drone: bool = False

"""Microphone array: a geometry (metres, node frame) and the capture channel feeding each mic.

`MicArray.arrange(block)` turns a captured AudioBlock into samples ordered like the geometry,
so the detectors never need to know how the array is wired to the sound card.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hal.acoustic.geometry import GeometryError, MicGeometry, load_geometry, parse_geometry
from hal.ports.audio import AudioBlock

__all__ = ["GeometryError", "MicArray", "MicArrayError", "MicGeometry", "load_geometry",
           "parse_geometry"]


class MicArrayError(ValueError):
    """The channel map does not fit the geometry or the capture; the message says which."""


class MicArray:
    """Geometry plus channel map. `channel_map[i]` is the capture channel (0-based) feeding
    geometry microphone i; None means the identity (mic i on channel i). Give `channels` (the
    capture's channel count) to check the map when the array is built rather than at the
    first block."""

    def __init__(self, geometry: MicGeometry, channel_map: Sequence[int] | None = None,
                 *, channels: int | None = None):
        mics = geometry.mics
        mapping = list(range(mics)) if channel_map is None else [int(c) for c in channel_map]
        if len(mapping) != mics:
            raise MicArrayError(f"channel_map {mapping} has {len(mapping)} entries but geometry"
                                f" '{geometry.name}' has {mics} microphones; give one capture"
                                " channel per microphone")
        negative = [c for c in mapping if c < 0]
        if negative:
            raise MicArrayError(f"channel_map {mapping}: channel {negative[0]} is negative")
        repeated = sorted({c for c in mapping if mapping.count(c) > 1})
        if repeated:
            raise MicArrayError(f"channel_map {mapping}: channel {repeated[0]} feeds more than"
                                " one microphone")
        self.geometry = geometry
        self.channel_map = tuple(mapping)
        self._index = np.array(mapping, dtype=np.intp)
        if channels is not None:
            self.check_channels(channels)

    @property
    def positions_m(self) -> np.ndarray:
        return self.geometry.positions_m

    @property
    def mics(self) -> int:
        return self.geometry.mics

    def check_channels(self, channels: int) -> None:
        """Raise if the map needs a channel the capture does not have."""
        if len(self.channel_map) > channels:
            raise MicArrayError(f"channel_map {list(self.channel_map)} names"
                                f" {len(self.channel_map)} channels but the capture has only"
                                f" {channels}")
        beyond = [c for c in self.channel_map if c >= channels]
        if beyond:
            raise MicArrayError(f"channel_map {list(self.channel_map)}: channel {beyond[0]} does"
                                f" not exist in a {channels}-channel capture (channels count"
                                " from 0)")

    def arrange(self, block: AudioBlock) -> np.ndarray:
        """Samples of shape (frames, mics), column i from the channel feeding microphone i."""
        samples = block.samples
        if samples.ndim != 2:
            raise MicArrayError(f"audio block has shape {samples.shape}; expected (frames,"
                                " channels)")
        self.check_channels(samples.shape[1])
        return samples[:, self._index]

    def aperture_m(self) -> float:
        return self.geometry.aperture_m()

    def max_delay_s(self, speed_of_sound_mps: float = 343.0) -> float:
        return self.geometry.max_delay_s(speed_of_sound_mps)

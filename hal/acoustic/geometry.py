"""Microphone geometry: where each microphone sits, in metres, in the node frame.

A geometry file is TOML: `name = "..."` and `positions_m = [[x, y, z], ...]`, one entry per
microphone (x along the mast heading, y to its left, z up, origin at the array's reference
point). Shipped geometries live in `geometries/` and are loaded by name.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GEOMETRY_DIR = Path(__file__).resolve().parent / "geometries"
# No two capsules fit closer than this; nearer positions are a typo, not a layout.
MIN_SPACING_M = 0.001
# A mast array is a few decimetres across; beyond this a value is millimetres by mistake.
MAX_COORDINATE_M = 5.0


class GeometryError(ValueError):
    """A geometry cannot be used; the message names the file and the entry at fault."""


@dataclass(frozen=True)
class MicGeometry:
    name: str
    positions_m: np.ndarray  # float64, shape (M, 3), node frame, metres

    @property
    def mics(self) -> int:
        return int(self.positions_m.shape[0])

    def aperture_m(self) -> float:
        """The largest distance between two microphones (0 for a single one)."""
        diffs = self.positions_m[:, None, :] - self.positions_m[None, :, :]
        return float(np.sqrt((diffs**2).sum(axis=-1)).max())

    def max_delay_s(self, speed_of_sound_mps: float = 343.0) -> float:
        """The longest time difference of arrival any pair of microphones can see."""
        if speed_of_sound_mps <= 0:
            raise ValueError(f"speed_of_sound_mps must be positive, got {speed_of_sound_mps}")
        return self.aperture_m() / speed_of_sound_mps


def shipped_geometries() -> list[str]:
    return sorted(p.stem for p in GEOMETRY_DIR.glob("*.toml"))


def load_geometry(name_or_path: str | Path) -> MicGeometry:
    """Load a shipped geometry by name ("uma16", "uma8", "respeaker4") or a TOML file."""
    text = str(name_or_path)
    shipped = GEOMETRY_DIR / f"{text}.toml"
    if text and "/" not in text and not text.endswith(".toml") and shipped.is_file():
        path = shipped
    else:
        path = Path(text)
        if not path.is_file():
            raise GeometryError(f"geometry '{text}' is neither a shipped geometry"
                                f" ({', '.join(shipped_geometries())}) nor a file")
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GeometryError(f"geometry file {path}: cannot read it: {exc}") from exc
    return parse_geometry(doc, source=str(path))


def parse_geometry(doc: dict[str, object], source: str = "<geometry>") -> MicGeometry:
    """Validate a geometry document (as read from TOML or a config section)."""
    where = f"geometry file {source}"
    unknown = sorted(set(doc) - {"name", "positions_m"})
    if unknown:
        raise GeometryError(f"{where}: unknown key(s) {unknown}; expected name, positions_m")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise GeometryError(f"{where}: 'name' must be a non-empty string, got {name!r}")
    entries = doc.get("positions_m")
    if not isinstance(entries, list) or not entries:
        raise GeometryError(f"{where}: 'positions_m' must be a list of at least one [x, y, z]"
                            f" in metres, got {entries!r}")
    rows: list[list[float]] = []
    for i, entry in enumerate(entries):
        at = f"{where}: positions_m[{i}] = {entry!r}"
        if not isinstance(entry, list) or len(entry) != 3:
            raise GeometryError(f"{at}: must be [x, y, z]")
        for value in entry:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise GeometryError(f"{at}: {value!r} is not a number")
            if not math.isfinite(value):
                raise GeometryError(f"{at}: {value!r} is not a finite number")
            if abs(value) > MAX_COORDINATE_M:
                raise GeometryError(f"{at}: {value} m is more than {MAX_COORDINATE_M} m from"
                                    " the reference point; positions are in metres, not mm")
        rows.append([float(v) for v in entry])
    positions = np.array(rows, dtype=np.float64).reshape(-1, 3)
    for a, b in itertools.combinations(range(len(rows)), 2):
        if float(np.linalg.norm(positions[a] - positions[b])) < MIN_SPACING_M:
            raise GeometryError(f"{where}: positions_m[{a}] {rows[a]} and positions_m[{b}]"
                                f" {rows[b]} are at the same place (closer than"
                                f" {MIN_SPACING_M * 1000:g} mm)")
    positions.setflags(write=False)
    return MicGeometry(name=name, positions_m=positions)

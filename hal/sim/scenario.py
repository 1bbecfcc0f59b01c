"""Scenario files (hardware/scenarios/*.toml): what the digital twin simulates.

A scenario names the hardware variant, places the node, and puts targets on trajectories among
ambient noise, site machinery and wind, with faults on a schedule. Positions are metres east
and north of the site origin (`[node]`'s latitude and longitude: the mast foot, unless the
scenario names several masts with `[[masts]]`, one twin per mast sharing the sky); altitudes
are metres above the ground there.

Every key is checked (`extra="forbid"`): a misspelt option is an error that names the file and
the key, never silently ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hal.sim.geo import offset_latlon

HARDWARE_DIR = Path(__file__).resolve().parents[2] / "hardware"
SCENARIO_DIR = HARDWARE_DIR / "scenarios"

# What each fault does to the simulated part, and what the self-test must say about it:
# docs/selftest.md ("Twin faults").
FAULT_NAMES = ("radar-unplugged", "radar-garbage", "radar-wrong-baud", "mic-dead",
               "mic-channel-dead", "mic-clipping", "mic-swapped", "relay-stuck", "i2c-missing",
               "interlock-open", "compass-off-heading")
FaultName = Literal["radar-unplugged", "radar-garbage", "radar-wrong-baud", "mic-dead",
                    "mic-channel-dead", "mic-clipping", "mic-swapped", "relay-stuck",
                    "i2c-missing", "interlock-open", "compass-off-heading"]
Metres2 = Annotated[list[float], Field(min_length=2, max_length=2)]
Metres3 = Annotated[list[float], Field(min_length=3, max_length=3)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodePose(_Model):
    latitude_deg: float = Field(57.0, ge=-90, le=90)
    longitude_deg: float = Field(11.9, ge=-180, le=180)
    altitude_m: float = Field(12.0, ge=-500, le=9000)
    # Where the array's x axis points, clockwise from true north.
    mast_heading_deg: float = Field(0.0, ge=0, lt=360)
    # Height of the radar and the array's reference point above the ground.
    mast_height_m: float = Field(6.0, ge=0, le=100)
    key_switch: Literal["off", "test", "operate"] = "operate"


class Mast(_Model):
    """One of a site's masts, for two or more daemons sharing one sky (`edgenode run --sim
    SCENARIO --mast NAME`): where its foot stands, metres east and north of the site origin
    (`[node]`'s latitude and longitude), and, where it differs from `[node]`'s, its heading and
    height. The name is the node's id."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    position_m: Metres2
    mast_heading_deg: float | None = Field(None, ge=0, lt=360)
    mast_height_m: float | None = Field(None, ge=0, le=100)


class Ambient(_Model):
    level_dba: float = Field(42.0, ge=0, le=110)
    spectrum: Literal["white", "pink", "brown", "road"] = "pink"
    temperature_c: float = Field(15.0, ge=-40, le=60)
    humidity_pct: float = Field(70.0, ge=1, le=100)


class Wind(_Model):
    speed_mps: float = Field(0.0, ge=0, le=40)
    # Where the wind comes from, clockwise from north (meteorological convention).
    from_deg: float = Field(270.0, ge=0, lt=360)
    gust_pct: float = Field(30.0, ge=0, le=200)


class Machinery(_Model):
    """A generator, compressor or pump: harmonic lines from a fixed place, whose fundamental
    drifts slowly (an engine governor or a loaded motor: a few tenths of a per cent over tens
    of seconds), never wanders as a flight controller makes a rotor wander."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    kind: Literal["generator", "compressor", "pump", "machine"] = "machine"
    position_m: Metres2
    height_m: float = Field(1.0, ge=0, le=100)
    fundamental_hz: float = Field(gt=5, le=2000)
    # Slow drift of the fundamental, per cent (peak), over drift_period_s.
    drift_pct: float = Field(0.1, ge=0, le=5)
    drift_period_s: float = Field(40.0, ge=2, le=3600)
    harmonics: int = Field(6, ge=1, le=40)
    # Level of each harmonic relative to the one before (dB, negative = falling) ...
    harmonic_slope_db: float = Field(-3.0, ge=-30, le=0)
    # ... or each harmonic's level relative to the fundamental (dB), which then sets harmonics.
    harmonic_levels_db: list[float] | None = Field(None, min_length=1, max_length=40)
    # The level, either at 1 m or at 10 m (dB(A), over the ground); exactly one of them.
    level_dba_1m: float | None = Field(None, ge=20, le=140)
    level_dba_10m: float | None = Field(None, ge=0, le=120)
    # Radar: a static reflector the radar's clutter removal mostly hides.
    rcs_m2: float = Field(1.0, ge=0, le=1000)

    @model_validator(mode="after")
    def _one_level(self) -> Machinery:
        if (self.level_dba_1m is None) == (self.level_dba_10m is None):
            raise ValueError(f"machinery '{self.name}': give exactly one of level_dba_1m and "
                             "level_dba_10m")
        return self

    @property
    def source_level_dba_1m(self) -> float:
        """dB(A) at 1 m: spherical spreading from 10 m (20 dB per decade of distance)."""
        if self.level_dba_1m is not None:
            return self.level_dba_1m
        assert self.level_dba_10m is not None
        return self.level_dba_10m + 20.0

    @property
    def relative_levels_db(self) -> list[float]:
        if self.harmonic_levels_db is not None:
            return list(self.harmonic_levels_db)
        return [self.harmonic_slope_db * k for k in range(self.harmonics)]


class Waypoint(_Model):
    position_m: Metres2
    altitude_m: float = Field(ge=0, le=3000)
    # Speed from this waypoint to the next.
    speed_mps: float = Field(10.0, gt=0, le=120)
    # Time spent hovering (or waiting) at this waypoint before moving on.
    hold_s: float = Field(0.0, ge=0, le=86400)


class RemoteIdBroadcast(_Model):
    """What a drone broadcasts as Remote ID (hal.sim.remoteid.Broadcast): where it is
    ("truthful"), where it is plus `offset_m` east and north ("spoofed"), or nothing ("silent").
    The twin sends the frames to the node's `socket` receivers (edgenode run --sim wires them).
    Its System message puts the operator at `operator_m` (east, north of the mast foot).
    """

    uas_id: str = Field(min_length=1, max_length=20, pattern=r"^[\x21-\x7e]+$")
    mode: Literal["truthful", "spoofed", "silent"] = "truthful"
    offset_m: Metres2 = Field(default_factory=lambda: [0.0, 0.0])
    transport: Literal["bluetooth", "wifi_beacon"] = "bluetooth"
    operator_id: str = Field("SWE-OP-TWIN", max_length=20)
    operator_m: Metres2 = Field(default_factory=lambda: [0.0, 0.0])


class Target(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    kind: Literal["quad", "fixed-wing", "bird", "car"]
    waypoints: list[Waypoint] = Field(min_length=1)
    start_s: float = Field(0.0, ge=0)
    # After the last waypoint: stay there, or leave the scene.
    after_end: Literal["hold", "vanish"] = "vanish"
    # dB(A) at 1 m; None takes the kind's default from DEFAULT_LEVEL_DBA_1M.
    level_dba_1m: float | None = Field(None, ge=0, le=140)
    rcs_m2: float | None = Field(None, gt=0, le=1000)
    # Rotorcraft and fixed-wing: propellers.
    rotor_count: int | None = Field(None, ge=1, le=12)
    rotor_rpm: float | None = Field(None, ge=300, le=30000)
    blades: int = Field(2, ge=2, le=6)
    # Slow wander of each rotor's speed (percent of rotor_rpm) as the controller works.
    rpm_wander_pct: float = Field(3.0, ge=0, le=30)
    # Birds.
    count: int = Field(1, ge=1, le=100)
    spread_m: float = Field(0.0, ge=0, le=500)
    wingbeat_hz: float = Field(6.0, ge=0.5, le=60)
    call_rate_per_s: float = Field(0.5, ge=0, le=20)
    call_hz: float = Field(3500.0, ge=200, le=12000)
    # Remote ID: none (an unregistered drone, or a bird) unless set.
    remote_id: RemoteIdBroadcast | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> Target:
        rotor_kinds = ("quad", "fixed-wing")
        if self.kind not in rotor_kinds and (self.rotor_count or self.rotor_rpm):
            raise ValueError(f"rotor_count/rotor_rpm apply to {rotor_kinds}, not '{self.kind}'")
        if self.kind != "bird" and (self.count != 1 or self.spread_m):
            raise ValueError(f"count/spread_m describe a bird flock, not '{self.kind}'")
        return self

    @property
    def level(self) -> float:
        return self.level_dba_1m if self.level_dba_1m is not None else \
            DEFAULT_LEVEL_DBA_1M[self.kind]

    @property
    def rcs(self) -> float:
        return self.rcs_m2 if self.rcs_m2 is not None else DEFAULT_RCS_M2[self.kind]

    @property
    def rotors(self) -> int:
        return self.rotor_count or (4 if self.kind == "quad" else 1)

    @property
    def rpm(self) -> float:
        return self.rotor_rpm or (5400.0 if self.kind == "quad" else 7200.0)


# Source levels at 1 m, used when a target does not set its own (see the scenario files for
# the published measurements each comes from).
DEFAULT_LEVEL_DBA_1M = {"quad": 74.0, "fixed-wing": 78.0, "bird": 70.0, "car": 85.0}
# Radar cross-sections at 60 GHz, m^2 (small drones 0.01..0.1, birds 0.001..0.01, cars 10+).
DEFAULT_RCS_M2 = {"quad": 0.02, "fixed-wing": 0.05, "bird": 0.01, "car": 10.0}


class Aircraft(_Model):
    """A manned aircraft flying straight, heard by the node only on ADS-B (the twin serves its
    messages in the Beast format): where it is at scenario time 0 (metres east and north of the
    site origin), its height above the ground there, ground speed and track."""

    icao: str = Field(pattern=r"^[0-9A-F]{6}$")
    callsign: str = Field(pattern=r"^[A-Z0-9]{1,8}$")
    kind: Literal["rotorcraft", "airliner", "light"] = "airliner"
    position_m: Metres2
    altitude_m: float = Field(ge=0, le=15_000)
    speed_kt: float = Field(ge=0, le=700)
    track_deg: float = Field(ge=0, lt=360)


class Fault(_Model):
    name: FaultName
    at_s: float = Field(ge=0)
    # None: stays until the end of the run.
    duration_s: float | None = Field(None, gt=0)


class Radar(_Model):
    frame_period_ms: float = Field(100.0, ge=20, le=1000)
    max_range_m: float = Field(120.0, ge=5, le=500)
    fov_azimuth_deg: float = Field(60.0, gt=0, le=90)
    fov_elevation_deg: float = Field(20.0, gt=0, le=90)
    # False points per frame from clutter (mean of a Poisson count).
    clutter_points_per_frame: float = Field(1.5, ge=0, le=50)
    # SNR of a 1 m^2 target at 10 m; falls with range^4 and scales with RCS.
    snr_db_1m2_at_10m: float = Field(60.0, ge=0, le=100)
    detection_threshold_db: float = Field(12.0, ge=0, le=40)


class Scenario(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = ""
    hardware: Literal["pi5-iwr6843-uma16", "pi4-ops243-respeaker4"]
    duration_s: float = Field(120.0, gt=0, le=7 * 86400)
    # At the end, start over (targets back to their first waypoint).
    repeat: bool = True
    seed: int = Field(1, ge=0)
    truth_period_s: float = Field(0.5, gt=0, le=60)
    node: NodePose = NodePose()
    masts: list[Mast] = Field(default_factory=list)
    ambient: Ambient = Ambient()
    wind: Wind = Wind()
    radar: Radar = Radar()
    machinery: list[Machinery] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    aircraft: list[Aircraft] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Scenario:
        ids = [t.id for t in self.targets] + [m.name for m in self.machinery]
        if len(set(ids)) != len(ids):
            raise ValueError(f"target ids and machinery names must be unique, got {ids}")
        names = [m.name for m in self.masts]
        if len(set(names)) != len(names):
            raise ValueError(f"mast names must be unique, got {names}")
        return self

    def mast_pose(self, mast: str | None) -> tuple[NodePose, tuple[float, float]]:
        """The pose of the mast a twin plays (its latitude and longitude where its foot
        stands) and that foot's offset (east, north) in metres from the site origin.

        `None` is `[node]` itself, at the origin, for a scenario without `[[masts]]`; a
        scenario with masts needs one of their names."""
        names = [m.name for m in self.masts]
        if mast is None:
            if names:
                raise ValueError(f"scenario '{self.name}' has masts {names}: choose the one "
                                 "this twin plays (--mast NAME)")
            return self.node, (0.0, 0.0)
        chosen = next((m for m in self.masts if m.name == mast), None)
        if chosen is None:
            where = f"its masts are {names}" if names else "it has no [[masts]]"
            raise ValueError(f"mast '{mast}' is not in scenario '{self.name}'; {where}")
        east, north = chosen.position_m
        lat, lon = offset_latlon(self.node.latitude_deg, self.node.longitude_deg, east, north)
        update: dict[str, float] = {"latitude_deg": lat, "longitude_deg": lon}
        if chosen.mast_heading_deg is not None:
            update["mast_heading_deg"] = chosen.mast_heading_deg
        if chosen.mast_height_m is not None:
            update["mast_height_m"] = chosen.mast_height_m
        return self.node.model_copy(update=update), (east, north)


class ScenarioError(Exception):
    """Every problem of a scenario file, each naming the file and the key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def resolve_scenario(name_or_path: str | Path) -> Path:
    """A path as given, or a shipped scenario's name (`one-drone-crossing`)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix == ".toml" or "/" in str(name_or_path):
        return path
    return SCENARIO_DIR / f"{name_or_path}.toml"


def _key(loc: tuple[Any, ...], data: Any) -> str:
    # Name list items by their id where they have one: `targets[drone-1].rotor_rpm`.
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            item = node[part]
            label = item.get("id") or item.get("name") if isinstance(item, dict) else None
            parts[-1] += f"[{label or part}]"
            node = item
            continue
        parts.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts) or "(whole file)"


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Parse and validate a scenario; raise ScenarioError listing every problem."""
    path = resolve_scenario(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read: {exc.strerror}"]) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError([f"{path}: invalid TOML: {exc}"]) from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            key = _key(err["loc"], data)
            if err["type"] == "missing":
                problems.append(f"{path}: {key}: missing (required)")
            elif err["type"] == "extra_forbidden":
                problems.append(f"{path}: {key} = {err['input']!r}: unknown key "
                                f"(check the spelling)")
            else:
                rule = err["msg"].removeprefix("Value error, ")
                shown = "" if isinstance(err["input"], dict) else f" = {err['input']!r}"
                problems.append(f"{path}: {key}{shown}: {rule}")
        raise ScenarioError(problems) from None


def hardware_config_path(variant: str) -> Path:
    return HARDWARE_DIR / "configs" / f"{variant}.toml"


def load_hardware(variant: str) -> dict[str, Any]:
    """The variant's example node config as a plain dict (hal never imports edgenode)."""
    path = hardware_config_path(variant)
    with path.open("rb") as fh:
        return tomllib.load(fh)

"""Where everything is at scenario time t: targets on their trajectories, seen from the node.

World frame: metres east, north, up from the site origin (ENU): the mast foot, or, where the
scenario names several masts, the point they are placed from. Node frame (ARCHITECTURE.md):
x along the mast heading, y to its left, z up, origin at the array on top of the mast the
twin plays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hal.sim.scenario import Scenario, Target


@dataclass(frozen=True)
class Leg:
    t0: float
    t1: float
    p0: np.ndarray
    p1: np.ndarray


class Trajectory:
    """Piecewise-linear path through waypoints at their speeds, holding where asked."""

    def __init__(self, target: Target, offset_m: np.ndarray | None = None):
        self.start_s = target.start_s
        self.after_end = target.after_end
        offset = np.zeros(3) if offset_m is None else offset_m
        points = [np.array([*w.position_m, w.altitude_m], dtype=float) + offset
                  for w in target.waypoints]
        self.legs: list[Leg] = []
        t = 0.0
        for i, wp in enumerate(target.waypoints):
            if wp.hold_s > 0:
                self.legs.append(Leg(t, t + wp.hold_s, points[i], points[i]))
                t += wp.hold_s
            if i + 1 < len(points):
                dt = float(np.linalg.norm(points[i + 1] - points[i])) / wp.speed_mps
                self.legs.append(Leg(t, t + dt, points[i], points[i + 1]))
                t += dt
        if not self.legs:
            self.legs.append(Leg(0.0, 0.0, points[0], points[0]))
        self.end_s = t

    def state(self, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(position, velocity) in ENU metres and m/s, or None when not in the scene."""
        local = t - self.start_s
        if local < 0:
            return None
        if local > self.end_s:
            if self.after_end == "vanish":
                return None
            return self.legs[-1].p1.copy(), np.zeros(3)
        for leg in self.legs:
            if local <= leg.t1 or leg is self.legs[-1]:
                span = leg.t1 - leg.t0
                if span <= 0:
                    return leg.p0.copy(), np.zeros(3)
                f = min(max((local - leg.t0) / span, 0.0), 1.0)
                return leg.p0 + f * (leg.p1 - leg.p0), (leg.p1 - leg.p0) / span
        raise AssertionError("unreachable")


@dataclass
class Body:
    """One physical emitter/reflector: a drone, one bird of a flock, a car."""

    id: str
    target: Target
    trajectory: Trajectory
    seed: int

    def state(self, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        st = self.trajectory.state(t)
        if st is None or self.target.kind != "bird":
            return st
        # Birds in a flock do not fly in formation: a slow individual wobble.
        pos, vel = st
        r = np.random.default_rng(self.seed)
        freq = r.uniform(0.05, 0.2, 3)
        phase = r.uniform(0, 2 * math.pi, 3)
        amp = np.array([4.0, 4.0, 1.5])
        wobble = amp * np.sin(2 * math.pi * freq * t + phase)
        dwobble = amp * 2 * math.pi * freq * np.cos(2 * math.pi * freq * t + phase)
        return pos + wobble, vel + dwobble


class World:
    def __init__(self, scenario: Scenario, mast: str | None = None):
        """`mast`: which of the scenario's `[[masts]]` sees this world (None: `[node]`)."""
        self.scenario = scenario
        pose, (east, north) = scenario.mast_pose(mast)
        self.pose = pose
        self.heading_rad = math.radians(pose.mast_heading_deg)
        self.array_enu = np.array([east, north, pose.mast_height_m])
        self.bodies: list[Body] = []
        rng = np.random.default_rng(scenario.seed)
        for ti, target in enumerate(scenario.targets):
            for k in range(target.count):
                offset = np.zeros(3)
                if target.count > 1:
                    offset = rng.normal(0, target.spread_m / 2 or 1.0, 3) * [1, 1, 0.3]
                body_id = target.id if target.count == 1 else f"{target.id}-{k + 1}"
                self.bodies.append(Body(body_id, target, Trajectory(target, offset),
                                        seed=scenario.seed * 1000 + ti * 100 + k))

    def scenario_time(self, t: float) -> float:
        """Scenario time t mapped into one run of the scenario (it starts over if repeating)."""
        if self.scenario.repeat:
            return t % self.scenario.duration_s
        return t

    def bodies_at(self, t: float) -> list[tuple[Body, np.ndarray, np.ndarray]]:
        t = self.scenario_time(t)
        out = []
        for body in self.bodies:
            st = body.state(t)
            if st is not None:
                out.append((body, st[0], st[1]))
        return out

    def enu_to_node(self, enu: np.ndarray) -> np.ndarray:
        """ENU metres from the site origin (..., 3) -> node frame (x ahead, y left, z up)."""
        rel = np.asarray(enu, dtype=float) - self.array_enu
        s, c = math.sin(self.heading_rad), math.cos(self.heading_rad)
        x = rel[..., 0] * s + rel[..., 1] * c
        y = -rel[..., 0] * c + rel[..., 1] * s
        return np.stack([x, y, rel[..., 2]], axis=-1)

    def node_dir_to_enu(self, vec: np.ndarray) -> np.ndarray:
        s, c = math.sin(self.heading_rad), math.cos(self.heading_rad)
        x, y, z = vec[..., 0], vec[..., 1], vec[..., 2]
        return np.stack([x * s - y * c, x * c + y * s, z], axis=-1)


def bearing_of(rel_enu: np.ndarray) -> tuple[float, float, float]:
    """(range m, true bearing deg clockwise from north, elevation deg) of an ENU offset."""
    e, n, u = (float(v) for v in rel_enu)
    rng = math.sqrt(e * e + n * n + u * u)
    return (rng, math.degrees(math.atan2(e, n)) % 360.0,
            math.degrees(math.atan2(u, math.hypot(e, n))))

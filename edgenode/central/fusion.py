"""Fusion of one site's node tracks into fused tracks. Pure: no I/O, no clock.

Each node reports, per track of its own, a true bearing (and sometimes a radar range). Here:
- `triangulate`: weighted least squares (Gauss-Newton on bearing and range residuals) for
  the position of one object seen from two or more nodes, with its 1-sigma error ellipse;
- `SiteFusion`: association of the nodes' tracks into fused tracks with one stable id. A
  node track joins the fused track whose position its bearing passes through (gated by the
  combined error); two single-node tracks pair when their bearing rays cross in front of both
  (preferring a crossing a third node's bearing confirms); with three or more members the
  member with the worst residual is split off when it disagrees; a lone track whose ray
  comes to cross another node's lone track pairs with it later too; when a node ends a track
  while a newer lone track of its own passes the fused position (its tracker split one
  object in two), the newer one takes the ended one's place. A fused track with one
  member is a bearing line (no position) unless that node measured range.

Ids are deterministic (from the founding node track), so every central instance that sees
the same observations in the same order names the same fused track alike.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edgenode.central.geometry import bearing_deg, wrap180

MAX_RANGE_M = 5000.0  # beyond any acoustic or radar detection: a crossing further is a ghost
GATE_SIGMA = 3.5  # a bearing within this many combined sigmas of a fix belongs to it
# A wrong member pulls a shared fix toward itself, so it is looked for (leave-one-out, one
# triangulation per member) only when someone misses the shared fix by this much.
SUSPECT_SIGMA = 2.5
MIN_BEARING_ERR_DEG = 0.5  # floor: a node claiming 0.01 deg would outvote every other
STALE_S = 3.0  # a member silent this long no longer steers the fix
# Nodes report at their own moments, so a member's last bearing is up to a period old: a
# drone at 15 m/s 200 m out moves ~4 deg/s across the sky. Older bearings count as that much
# less certain, in the fix and in the gates.
DRIFT_DEG_PER_S = 5.0
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass(frozen=True)
class Observation:
    """One node's latest view of one of its tracks, in the site's frame (metres)."""
    node: str
    object_id: str
    t: float
    east: float  # the node's position
    north: float
    bearing_deg: float  # true bearing, clockwise from north
    bearing_err_deg: float  # one sigma
    range_m: float | None = None
    range_err_m: float | None = None


@dataclass(frozen=True)
class Fix:
    east: float
    north: float
    semi_major_m: float  # one-sigma ellipse
    semi_minor_m: float
    orientation_deg: float  # bearing of the major axis, [0, 180)
    chi2: float  # sum of squared normalised residuals

    def error_m(self) -> float:
        """One number for the ellipse's size: its RMS radius."""
        return math.hypot(self.semi_major_m, self.semi_minor_m)


def _sigma_rad(obs: Observation) -> float:
    return math.radians(max(obs.bearing_err_deg, MIN_BEARING_ERR_DEG))


# Plain floats, not numpy: the systems are 2x2, where numpy's per-call overhead is most of
# the cost, and the service runs this for every event of the fleet.

def _solve2(a11: float, a12: float, a22: float, b1: float, b2: float) -> tuple[float, float]:
    det = a11 * a22 - a12 * a12
    return (a22 * b1 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det


def _cond2(a11: float, a12: float, a22: float) -> float:
    """Condition number of a symmetric positive semi-definite 2x2 matrix."""
    mean, diff = (a11 + a22) / 2, math.hypot((a11 - a22) / 2, a12)
    low = mean - diff
    return math.inf if low <= 0 else (mean + diff) / low


def _initial_guess(obs: Sequence[Observation]) -> tuple[float, float] | None:
    """Lines' least-squares crossing (weighted by bearing error), or range along a bearing."""
    a11 = a12 = a22 = b1 = b2 = 0.0
    for o in obs:
        th = math.radians(o.bearing_deg)
        n1, n2 = math.cos(th), -math.sin(th)  # normal to the line of bearing
        w = 1.0 / _sigma_rad(o) ** 2
        a11, a12, a22 = a11 + w * n1 * n1, a12 + w * n1 * n2, a22 + w * n2 * n2
        proj = w * (n1 * o.east + n2 * o.north)
        b1, b2 = b1 + proj * n1, b2 + proj * n2
    if len({o.node for o in obs}) >= 2 and _cond2(a11, a12, a22) < 1e6:
        return _solve2(a11, a12, a22, b1, b2)
    for o in obs:
        if o.range_m is not None:
            th = math.radians(o.bearing_deg)
            return o.east + o.range_m * math.sin(th), o.north + o.range_m * math.cos(th)
    return None


def _normal_equations(x: float, y: float, obs: Sequence[Observation]
                      ) -> tuple[float, float, float, float, float, float]:
    """(JtJ11, JtJ12, JtJ22, Jtr1, Jtr2, chi2) of the bearing and range residuals at (x, y)."""
    a11 = a12 = a22 = g1 = g2 = chi2 = 0.0
    for o in obs:
        de, dn = x - o.east, y - o.north
        r2 = max(de * de + dn * dn, 1.0)
        s = _sigma_rad(o)
        rows = [(math.radians(wrap180(bearing_deg(de, dn) - o.bearing_deg)) / s,
                 dn / r2 / s, -de / r2 / s)]
        if o.range_m is not None:
            sr = max(o.range_err_m or 5.0, 0.5)
            r = math.sqrt(r2)
            rows.append(((r - o.range_m) / sr, de / r / sr, dn / r / sr))
        for res, j1, j2 in rows:
            a11, a12, a22 = a11 + j1 * j1, a12 + j1 * j2, a22 + j2 * j2
            g1, g2, chi2 = g1 + j1 * res, g2 + j2 * res, chi2 + res * res
    return a11, a12, a22, g1, g2, chi2


def triangulate(obs: Sequence[Observation], max_range_m: float = MAX_RANGE_M) -> Fix | None:
    """The position of one object from its observations, or None when they do not fix it
    (one node without range, parallel bearings, a crossing behind a node or out of range)."""
    guess = _initial_guess(obs)
    if guess is None:
        return None
    x, y = guess
    for _ in range(10):
        a11, a12, a22, g1, g2, _ = _normal_equations(x, y, obs)
        if _cond2(a11, a12, a22) > 1e10:
            return None
        dx, dy = _solve2(a11, a12, a22, -g1, -g2)
        x, y = x + dx, y + dy
        if math.hypot(dx, dy) < 0.01:
            break
    a11, a12, a22, _, _, chi2 = _normal_equations(x, y, obs)
    if _cond2(a11, a12, a22) > 1e8:
        return None
    for o in obs:
        de, dn = x - o.east, y - o.north
        if math.hypot(de, dn) > max_range_m:
            return None
        if abs(wrap180(bearing_deg(de, dn) - o.bearing_deg)) > 60.0:
            return None  # behind the node: the lines cross, the rays do not
    # covariance = inverse of JtJ; its eigenvalues are the ellipse's squared semi-axes
    det = a11 * a22 - a12 * a12
    c11, c12, c22 = a22 / det, -a12 / det, a11 / det
    mean, diff = (c11 + c22) / 2, math.hypot((c11 - c22) / 2, c12)
    # the major axis: eigenvector of the larger eigenvalue, angle from the east axis
    theta = 0.5 * math.atan2(2 * c12, c11 - c22)
    return Fix(east=x, north=y, semi_major_m=math.sqrt(max(mean + diff, 0.0)),
               semi_minor_m=math.sqrt(max(mean - diff, 0.0)),
               orientation_deg=bearing_deg(math.cos(theta), math.sin(theta)) % 180.0,
               chi2=chi2)


def bearing_residual_sigma(obs: Observation, fix: Fix) -> float:
    """How many combined sigmas the observation's bearing misses the fix by."""
    de, dn = fix.east - obs.east, fix.north - obs.north
    dist = max(math.hypot(de, dn), 1.0)
    miss = abs(wrap180(bearing_deg(de, dn) - obs.bearing_deg))
    fix_deg = math.degrees(fix.semi_major_m / dist)
    sigma = math.hypot(max(obs.bearing_err_deg, MIN_BEARING_ERR_DEG), fix_deg)
    score = miss / sigma
    if obs.range_m is not None:
        sr = math.hypot(obs.range_err_m or 5.0, fix.semi_major_m)
        score = max(score, abs(dist - obs.range_m) / sr)
    return score


def fused_id(site: str, node: str, object_id: str, t: float, serial: int = 0) -> str:
    """A ULID-shaped id: the founding track's time, then 80 bits from (site, node, track,
    serial). The serial (fused tracks made so far at the site) keeps a node track that is
    split off and founds a second fused track at the same instant from reusing the first id."""
    ms = int(t * 1000) & ((1 << 48) - 1)
    digest = int.from_bytes(
        hashlib.sha256(f"{site}/{node}/{object_id}/{serial}".encode()).digest()[:10], "big")
    value = (ms << 80) | digest
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


Key = tuple[str, str]  # (node, object_id)


@dataclass
class FusedTrack:
    id: str
    first_seen: float
    members: set[Key] = field(default_factory=set)
    fix: Fix | None = None
    t: float = 0.0
    ended: bool = False
    published: bool = False  # its `new` went out


class SiteFusion:
    """The fused picture of one site. Feed it observations and track ends, in arrival order."""

    def __init__(self, site: str, stale_s: float = STALE_S):
        self.site = site
        self.stale_s = stale_s
        self.latest: dict[Key, Observation] = {}
        self.tracks: dict[str, FusedTrack] = {}
        self.member_of: dict[Key, str] = {}
        self.created = 0  # fused tracks made so far: part of each id

    # -- queries --------------------------------------------------------------------------
    def live_members(self, track: FusedTrack, now: float) -> list[Observation]:
        """The members heard within `stale_s`, their bearing errors widened by their age."""
        out = []
        for k in sorted(track.members):
            o = self.latest[k]
            age = now - o.t
            if age > self.stale_s:
                continue
            if age > 0:
                o = Observation(o.node, o.object_id, o.t, o.east, o.north, o.bearing_deg,
                                math.hypot(o.bearing_err_deg, DRIFT_DEG_PER_S * age),
                                o.range_m, o.range_err_m)
            out.append(o)
        return out

    def track_of(self, node: str, object_id: str) -> FusedTrack | None:
        fid = self.member_of.get((node, object_id))
        return self.tracks.get(fid) if fid else None

    # -- updates --------------------------------------------------------------------------
    def observe(self, obs: Observation) -> list[FusedTrack]:
        """Take one observation; return the fused tracks it changed (to publish)."""
        key = (obs.node, obs.object_id)
        self.latest[key] = obs
        changed: list[FusedTrack] = []
        fid = self.member_of.get(key)
        if fid is None:
            changed += self._associate(obs)
        elif len(self.tracks[fid].members) == 1 and (moved := self._rejoin(self.tracks[fid],
                                                                              obs)):
            changed += moved
        else:
            track = self.tracks[fid]
            self._refix(track, obs.t)
            changed.append(track)
            worst = self._worst_member(track, obs.t)
            if worst is not None:
                self._detach(track, worst)
                self._refix(track, obs.t)
                changed += self._associate(self.latest[worst])
        return _unique(changed)

    def end(self, node: str, object_id: str, t: float) -> list[FusedTrack]:
        """The node ended its track: drop it; a fused track without members ends. Where the
        node already follows the object again on a new track (a lone bearing line through
        the fused position), that track takes the ended one's place (`_handover`)."""
        key = (node, object_id)
        self.latest.pop(key, None)
        fid = self.member_of.pop(key, None)
        if fid is None:
            return []
        track = self.tracks[fid]
        last_fix = track.fix
        track.members.discard(key)
        track.t = max(track.t, t)
        if not track.members:
            track.ended = True
            del self.tracks[fid]
            return [track]
        self._refix(track, t)
        return [track, *self._handover(track, node, last_fix, t)]

    def expire(self, now: float, max_silence_s: float) -> list[FusedTrack]:
        """End members whose node stopped talking about them (no `end` came, e.g. node lost)."""
        gone = [k for k, o in self.latest.items() if now - o.t > max_silence_s]
        out: list[FusedTrack] = []
        for node, object_id in gone:
            out += self.end(node, object_id, now)
        return _unique(out)

    # -- internals ------------------------------------------------------------------------
    def _refix(self, track: FusedTrack, now: float) -> None:
        live = self.live_members(track, now)
        track.t = max([track.t] + [o.t for o in live])
        track.fix = triangulate(live) if live else None

    def _worst_member(self, track: FusedTrack, now: float) -> Key | None:
        live = self.live_members(track, now)
        if len(live) < 3:
            return None
        if track.fix is not None and all(bearing_residual_sigma(o, track.fix) <= SUSPECT_SIGMA
                                         for o in live):
            return None  # everyone agrees with the shared fix: nothing to look for
        # Each member against the fix of the others: a wrong member pulls a shared fix to
        # itself, so it would look innocent against a fix it is part of.
        worst, worst_score = None, GATE_SIGMA
        for o in live:
            others = triangulate([p for p in live if p is not o])
            if others is None:
                continue
            score = bearing_residual_sigma(o, others)
            if score > worst_score:
                worst, worst_score = (o.node, o.object_id), score
        return worst

    def _detach(self, track: FusedTrack, key: Key) -> None:
        track.members.discard(key)
        self.member_of.pop(key, None)

    def _join(self, track: FusedTrack, obs: Observation) -> None:
        key = (obs.node, obs.object_id)
        track.members.add(key)
        self.member_of[key] = track.id

    def _candidates(self, obs: Observation) -> Iterable[FusedTrack]:
        for track in self.tracks.values():
            if any(node == obs.node for node, _ in track.members):
                continue  # one node's two tracks are two objects (its tracker says so)
            if self.live_members(track, obs.t):
                yield track

    def _best(self, obs: Observation) -> tuple[float, FusedTrack, list[Observation]] | None:
        best: tuple[float, FusedTrack, list[Observation]] | None = None
        for track in self._candidates(obs):
            live = self.live_members(track, obs.t)
            fix = triangulate([*live, obs])
            if fix is None:
                continue
            if track.fix is not None:
                score = bearing_residual_sigma(obs, track.fix)
                supporters: list[Observation] = []
            else:
                # Two rays always cross somewhere: ask the other lone tracks whether they
                # agree. A crossing confirmed by a third node beats an unconfirmed one.
                supporters = self._supporters(fix, {obs.node} | {o.node for o in live})
                score = (GATE_SIGMA * 0.9 if not supporters else 0.5) + 0.01 * len(live)
            if score <= GATE_SIGMA and (best is None or score < best[0]):
                best = (score, track, supporters)
        return best

    def _associate(self, obs: Observation) -> list[FusedTrack]:
        best = self._best(obs)
        if best is None:
            self.created += 1
            track = FusedTrack(id=fused_id(self.site, obs.node, obs.object_id, obs.t,
                                           self.created), first_seen=obs.t)
            self.tracks[track.id] = track
            self._join(track, obs)
            self._refix(track, obs.t)
            return [track]
        _, track, supporters = best
        self._join(track, obs)
        changed = [track]
        for sup in supporters:
            old = self.track_of(sup.node, sup.object_id)
            if old is not None and old is not track:
                changed += self.end(sup.node, sup.object_id, obs.t)
                self.latest[(sup.node, sup.object_id)] = sup
            self._join(track, sup)
        self._refix(track, obs.t)
        return changed

    def _rejoin(self, track: FusedTrack, obs: Observation) -> list[FusedTrack]:
        """A lone track (bearing line) whose bearing now passes through a fused track with a
        position joins it; its own line ends. One whose ray now crosses another node's lone
        track pairs with it, as a new track would have: two nodes' long-lived tracks can each
        have started while the other was silent (its node coasting it), and would otherwise
        stay two lines for good. The older fused id lives on; the other line ends."""
        best = self._best(obs)
        if best is None:
            return []
        _, other, supporters = best
        if other.fix is None and len(other.members) == 1 and track.first_seen < other.first_seen:
            ((node, object_id),) = other.members  # this line is the older: the other comes
            changed = self._move(self.latest[(node, object_id)], track)
            other = track
        else:
            changed = self._move(obs, other)
        for sup in supporters:
            if self.track_of(sup.node, sup.object_id) is not other:
                changed += self._move(sup, other)
        self._refix(other, obs.t)
        return [*changed, other]

    def _move(self, obs: Observation, track: FusedTrack) -> list[FusedTrack]:
        """The node track of `obs` leaves its fused track (ending it if it was its last
        member) and joins `track`."""
        changed = self.end(obs.node, obs.object_id, obs.t)
        self.latest[(obs.node, obs.object_id)] = obs
        self._join(track, obs)
        return changed

    def _handover(self, track: FusedTrack, node: str, last_fix: Fix | None,
                  t: float) -> list[FusedTrack]:
        """A node's tracker may follow one object on a second track before ending the first
        (a split): while both live, they are two objects to us, so the new one stands alone
        as a bearing line. When the first ends, the node's lone track whose bearing passes
        the position the fused track last had (GATE_SIGMA) joins it; its own line ends."""
        if last_fix is None or any(n == node for n, _ in track.members):
            return []
        best: tuple[float, Observation] | None = None
        for other in list(self.tracks.values()):
            if other is track or len(other.members) != 1:
                continue
            ((other_node, other_id),) = other.members
            o = self.latest.get((other_node, other_id))
            if other_node != node or o is None or t - o.t > self.stale_s:
                continue
            score = bearing_residual_sigma(o, last_fix)
            if score <= GATE_SIGMA and (best is None or score < best[0]):
                best = (score, o)
        if best is None:
            return []
        o = best[1]
        changed = self.end(o.node, o.object_id, t)
        self.latest[(o.node, o.object_id)] = o
        self._join(track, o)
        self._refix(track, t)
        return changed

    def _supporters(self, fix: Fix, exclude: set[str]) -> list[Observation]:
        """Lone tracks (one-member fused tracks) of other nodes whose bearing passes the fix."""
        out: dict[str, Observation] = {}
        for track in self.tracks.values():
            if len(track.members) != 1:
                continue
            (key,) = track.members
            o = self.latest.get(key)
            if o is None or o.node in exclude or o.node in out:
                continue
            if bearing_residual_sigma(o, fix) <= GATE_SIGMA:
                out[o.node] = o
        return list(out.values())


def _unique(tracks: list[FusedTrack]) -> list[FusedTrack]:
    seen: dict[int, FusedTrack] = {}
    for t in tracks:
        seen.setdefault(id(t), t)
    return list(seen.values())

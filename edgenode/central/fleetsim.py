"""Fleet simulator: many lightweight nodes speaking the node's real MQTT contract, for scale.

Not N twins: each node is one MQTT connection (edgenode.link's client, with the node's last
will; all of them driven by one event loop on one thread, edgenode/central/netloop.py), a
retained birth record with its position and mast heading, retained health every
few seconds, and track events (new/update/end with event_id, session, seq, built by the
link's own Envelope) at a node's rate. Nodes stand on a circle around their site's centre;
drones fly circles over the sites; each node's bearing to a drone is the true geometry plus
Gaussian noise, with a radar range when the drone is within radar reach.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from edgenode import __version__
from edgenode.central.geometry import LocalFrame, bearing_deg
from edgenode.central.netloop import LoopClient, NetLoop, raise_fd_limit
from edgenode.link.mqtt import BrokerOptions
from edgenode.link.payloads import Envelope, encode
from edgenode.link.topics import Topics
from edgenode.ulid import new_ulid

log = logging.getLogger(__name__)

SITE_SPACING_DEG = 0.05  # ~5.5 km between sites: no node hears another site's drones


@dataclass
class Drone:
    site: int
    radius_m: float
    speed_mps: float
    phase: float
    altitude_m: float = 60.0

    def position(self, t: float) -> tuple[float, float]:
        """(east, north) in the site's frame at t seconds from the start."""
        a = self.phase + self.speed_mps * t / self.radius_m
        return self.radius_m * math.sin(a), self.radius_m * math.cos(a)


@dataclass
class SimNode:
    site: str
    site_index: int
    name: str
    east: float
    north: float
    heading_deg: float
    envelope: Envelope
    client: LoopClient
    seq: int = 0
    tracks: dict[int, str] = field(default_factory=dict)  # drone index -> object id
    updates: dict[int, int] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)


class FleetSim:
    def __init__(self, url: str, *, nodes: int, drones: int, seconds: float,
                 nodes_per_site: int = 5, rate_hz: float = 1.0, health_period_s: float = 5.0,
                 noise_deg: float = 2.0, ring_m: float = 200.0, detect_m: float = 800.0,
                 radar_m: float = 150.0, seed: int = 1, mqtt_version: str = "5",
                 events_log: Path | None = None, lat0: float = 51.5, lon0: float = -0.12,
                 trajectory: Callable[[int, float], tuple[float, float]] | None = None,
                 node_positions: list[tuple[float, float]] | None = None,
                 shard: tuple[int, int] = (0, 1)):
        """`trajectory(drone, t)` and `node_positions` (per site, east/north metres) replace
        the circles, e.g. to fly one scenario's drone past chosen masts. `shard` (k, n): run
        only the nodes whose index is k modulo n (the same fleet and sky in every shard), to
        spread a large fleet over several processes (cores)."""
        self.url, self.seconds, self.rate_hz = url, seconds, rate_hz
        self.health_period_s, self.noise_deg = health_period_s, noise_deg
        self.detect_m, self.radar_m = detect_m, radar_m
        self.rng = random.Random(seed)
        self.mqtt_version = mqtt_version
        self.events_log = events_log
        self.trajectory = trajectory
        self.published_ids: list[str] = []
        self.t0_wall = 0.0
        self.acked = 0
        self.loop = NetLoop()
        n_sites = max(1, math.ceil(nodes / nodes_per_site))
        self.frames = [LocalFrame(lat0 + i * SITE_SPACING_DEG, lon0) for i in range(n_sites)]
        self.drones = [Drone(site=i % n_sites, radius_m=self.rng.uniform(100, 300),
                             speed_mps=self.rng.uniform(8, 15), phase=self.rng.uniform(0, 6.3))
                       for i in range(drones)]
        self.site_drones: dict[int, list[int]] = {}
        for d, drone in enumerate(self.drones):
            self.site_drones.setdefault(drone.site, []).append(d)
        self.nodes: list[SimNode] = []
        for i in range(nodes):
            s, k = divmod(i, nodes_per_site)
            per = min(nodes_per_site, nodes - s * nodes_per_site)
            if node_positions:
                east, north = node_positions[k]
            else:
                angle = 2 * math.pi * k / per
                east, north = ring_m * math.sin(angle), ring_m * math.cos(angle)
            site, name = f"site{s:03d}", f"n{k:02d}"
            topics = Topics(site, name)
            session, heading = self.rng.randint(1, 10_000), self.rng.uniform(0, 360)
            if i % shard[1] != shard[0]:
                continue  # drawn all the same, so every shard sees one fleet
            envelope = Envelope(site, name, session=session)
            will = encode(envelope.offline(reason="connection_lost", t=None))
            # A node publishes its birth on every connect, as the link does after a reconnect.
            client = self.loop.client(
                BrokerOptions(url=url, client_id=topics.client_id, mqtt_version=mqtt_version,
                              will_topic=topics.status, will_payload=will, keepalive_s=30,
                              max_inflight=100),
                on_connect=partial(self._birth_of, len(self.nodes)))
            client.on_published(self._acked)
            self.nodes.append(SimNode(site, s, name, east, north, heading, envelope, client))

    def _acked(self, mid: int) -> None:
        self.acked += 1

    # -- run ------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """Connect, publish births, then each node's events and health on its own schedule
        until `seconds` have passed (or `stop` is set); drain; say goodbye. Everything runs
        on the calling thread (edgenode/central/netloop.py)."""
        stop = stop or threading.Event()
        try:
            self._connect_all()  # each node's birth goes out in its on_connect
            log.info("fleet-sim: %d nodes up at %d sites, %d drones", len(self.nodes),
                     len(self.frames), len(self.drones))
            start = time.monotonic()
            self.t0_wall = time.time()  # sim time 0 on the wall clock: truth for the tests
            with open(self.events_log, "a") if self.events_log else nullcontext() as log_file:
                self._run_schedule(start, stop, log_file)
            self._drain()
            for node in self.nodes:
                self._publishes += 1
                node.client.publish(
                    Topics(node.site, node.name).status,
                    encode(node.envelope.offline(reason="stopped", t=time.time())), retain=True)
            self._drain(5.0)
            seconds = time.monotonic() - start
        finally:  # also after a failure: no connection outlives the run
            self._disconnect_all()
        return {"events": len(self.published_ids), "acked": self.acked,
                "nodes": len(self.nodes), "sites": len(self.frames), "drones": len(self.drones),
                "seconds": round(seconds, 1)}

    def _disconnect_all(self, timeout_s: float = 2.0) -> None:
        """DISCONNECT (no will) from every node, then close the loop."""
        for node in self.nodes:
            if node.client.socket() is not None:
                node.client.stop()
        deadline = time.monotonic() + timeout_s
        while (any(node.client.socket() is not None for node in self.nodes)
               and time.monotonic() < deadline):
            self.loop.poll(0.05)  # a DISCONNECT the kernel did not take at once
        self.loop.close()

    def _connect_all(self) -> None:
        raise_fd_limit(len(self.nodes) + 64)
        for node in self.nodes:
            try:
                node.client.start()
            except OSError as exc:
                raise RuntimeError(f"fleet-sim: node {node.site}/{node.name} cannot reach "
                                   f"{self.url}: {exc}") from exc
        deadline = time.monotonic() + 30 + 0.05 * len(self.nodes)
        while not all(node.client.connected.is_set() for node in self.nodes):
            if time.monotonic() > deadline:
                node = next(n for n in self.nodes if not n.client.connected.is_set())
                raise RuntimeError(f"fleet-sim: node {node.site}/{node.name} cannot reach "
                                   f"{self.url}: {node.client.last_error or 'no CONNACK'}")
            self.loop.poll(0.05)

    def _run_schedule(self, start: float, stop: threading.Event, log_file: Any) -> None:
        """One heap of (due, node, kind). Each node starts at a random phase of its period,
        as real nodes are not in lockstep; its last tick of the run ends its tracks (spread
        over one period like everything else, not one burst of ends when the run stops)."""
        period, end = 1.0 / self.rate_hz, start + self.seconds
        heap: list[tuple[float, int, str]] = []
        for i in range(len(self.nodes)):
            heap.append((start + self.rng.uniform(0, period), i, "events"))
            heap.append((start + self.rng.uniform(0, self.health_period_s), i, "health"))
        heapq.heapify(heap)
        while not stop.is_set() and (now := time.monotonic()) < end:
            while heap and heap[0][0] <= now:
                due, i, kind = heapq.heappop(heap)
                node = self.nodes[i]
                if kind == "health":
                    self._health(node)
                    heapq.heappush(heap, (due + self.health_period_s, i, kind))
                elif due + period < end:
                    self._events(node, time.monotonic() - start, log_file)
                    heapq.heappush(heap, (due + period, i, kind))
                else:
                    self._end_tracks(node, log_file)
            wait = (heap[0][0] if heap else end) - time.monotonic()
            self.loop.poll(min(max(wait, 0.0), 0.1, end - time.monotonic()))
        for node in self.nodes:  # stopped early: whatever is still open ends now
            self._end_tracks(node, log_file)

    def _end_tracks(self, node: SimNode, log_file: Any) -> None:
        for drone in list(node.tracks):
            self._publish_event(node, drone, "end", None, log_file)

    def _drain(self, timeout_s: float = 20.0) -> None:
        """Wait until the broker acknowledged every publish (QoS 1) before saying how many."""
        deadline = time.monotonic() + timeout_s
        while self.acked < self._publishes and time.monotonic() < deadline:
            self.loop.poll(0.05)
        if self.acked < self._publishes:
            log.warning("fleet-sim: %d publishes still unacknowledged",
                        self._publishes - self.acked)

    _publishes = 0

    def _birth_of(self, index: int) -> None:
        self._birth(self.nodes[index])

    def _birth(self, node: SimNode) -> None:
        lat, lon = self.frames[node.site_index].to_latlon(node.east, node.north)
        topics = Topics(node.site, node.name)
        online = node.envelope.online(
            t=time.time(), version=__version__, hardware="fleet-sim",
            capabilities=["radar", "acoustic"],
            position={"datum": "WGS84", "latitude_deg": lat, "longitude_deg": lon,
                      "altitude_m": 10.0},
            mast_heading_deg=round(node.heading_deg, 1), config_digest="sha256:fleetsim",
            client_id=topics.client_id, mqtt_version=self.mqtt_version)
        self._publishes += 1
        node.client.publish(topics.status, encode(online), retain=True)

    def _health(self, node: SimNode) -> None:
        link = {"session": node.envelope.session, "connected": True, "backlog": 0,
                "backlog_bytes": 0, "in_flight": 0, "uncommitted": 0, "published": node.seq,
                "replayed": 0, "refused": 0, "outbox_resets": 0, "dropped": 0, "gaps": 0,
                "connects": 1, "cmd_received": 0, "cmd_results": 0, "cmd_overflow": 0,
                "responses_refused": 0, "last_error": ""}
        health = node.envelope.state({"state": "ok", "parts": {}, "link": link}, time.time())
        self._publishes += 1
        node.client.publish(Topics(node.site, node.name).topic("health"), encode(health),
                            retain=True)

    def drone_position(self, index: int, t: float) -> tuple[float, float]:
        if self.trajectory is not None:
            return self.trajectory(index, t)
        return self.drones[index].position(t)

    def _events(self, node: SimNode, t: float, log_file: Any) -> None:
        for d in self.site_drones.get(node.site_index, ()):
            east, north = self.drone_position(d, t)
            de, dn = east - node.east, north - node.north
            dist = math.hypot(de, dn)
            if dist > self.detect_m:
                if d in node.tracks:
                    self._publish_event(node, d, "end", None, log_file)
                continue
            bearing = (bearing_deg(de, dn) + self.rng.gauss(0, self.noise_deg)) % 360
            rng = (dist + self.rng.gauss(0, 3.0)) if dist <= self.radar_m else None
            kind = "update" if d in node.tracks else "new"
            self._publish_event(node, d, kind, (bearing, rng, dist), log_file)

    def _publish_event(self, node: SimNode, drone: int, kind: str,
                       seen: tuple[float, float | None, float] | None, log_file: Any) -> None:
        now = time.time()
        if kind == "new":
            node.tracks[drone] = new_ulid(now)
            node.first_seen[drone] = now
            node.updates[drone] = 0
        object_id = node.tracks[drone]
        node.updates[drone] += 1
        state = _track_state(object_id, now, node.first_seen[drone], node.updates[drone],
                             seen, self.noise_deg)
        previous = _track_state(object_id, now - 1.0, node.first_seen[drone],
                                node.updates[drone] - 1, seen, self.noise_deg)
        if kind == "end":
            state = {**previous, "status": "ended"}
            del node.tracks[drone]
        event = {"type": kind, "object_id": object_id,
                 "before": None if kind == "new" else previous, "after": state}
        payload = node.envelope.event(event, node.seq, now)
        node.seq += 1
        self._publishes += 1
        node.client.publish(Topics(node.site, node.name).events, encode(payload), qos=1)
        self.published_ids.append(payload["event_id"])
        if log_file:
            log_file.write(payload["event_id"] + "\n")


def _track_state(object_id: str, t: float, first_seen: float, updates: int,
                 seen: tuple[float, float | None, float] | None,
                 noise_deg: float) -> dict[str, Any]:
    bearing, rng, _ = seen if seen else (0.0, None, 0.0)
    return {
        "object_id": object_id, "status": "confirmed" if updates > 2 else "tentative",
        "t": round(t, 6), "first_seen": round(first_seen, 6),
        "range_m": None if rng is None else {"value": round(rng, 1), "error": 3.0},
        "azimuth_deg": {"value": round(bearing, 2), "error": noise_deg},
        "elevation_deg": None, "location": None, "velocity_enu_mps": None, "speed_mps": None,
        "classification": [{"type": "drone", "confidence": 0.8}], "evidence": [],
        "sensors": ["acoustic", "radar"] if rng is not None else ["acoustic"],
        "acoustic": {"f0_hz": 180.0, "score": 0.8}, "updates": max(0, updates),
    }

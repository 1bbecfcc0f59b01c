"""One central instance: MQTT in, fused tracks out.

Two stages, so that instances can split the load and still each hold the whole picture:
1. Intake, on the shared subscription `$share/<group>/edgenode/+/+/events` (MQTT 5; on 3.1.1
   a plain subscription per site: one instance per set of sites). The broker gives each event
   to one instance. It de-duplicates by event_id, then relays a compact observation on
   `edgenode/<site>/central/obs`, stamped with its own instance id.
2. Fusion, on a plain subscription to `edgenode/+/central/obs`: every instance sees every
   observation in the broker's order, keeps the de-dup window, the seq accounting and the
   site's fused picture, and so names fused tracks alike. The instance that took an event in
   stage 1 publishes the fused tracks it changed, on `edgenode/<site>/central/tracks`.
Node positions come from the nodes' retained birth records (`status`). All MQTT handlers run
on paho's one loop thread, so the state below has one owner; except the intake of a stand-in
for a dead instance's session (edgenode/central/standin.py), which runs on that client's
thread and shares the de-dup window under `_intake_lock`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgenode.central.accounting import RecentIds, SeqAccounting
from edgenode.central.client import SharedAwareClient
from edgenode.central.fusion import Observation, SiteFusion
from edgenode.central.geometry import LocalFrame
from edgenode.central.journal import Journal
from edgenode.central.standin import (
    INSTANCE_STATES,
    Roster,
    StandIn,
    instance_topic,
    reachable_journal,
    state_payload,
)
from edgenode.central.tracks import fused_payload, tracks_topic
from edgenode.link.mqtt import BrokerOptions, InboundMessage
from edgenode.link.payloads import encode
from edgenode.ulid import new_ulid

log = logging.getLogger(__name__)

MEMBER_SILENCE_S = 10.0  # a node track with no event this long (and no `end`) is dropped
LATENCY_SAMPLES = 200_000
# Events the broker may still redeliver after a crash: at most what was in flight to us
# (receive maximum) plus what paho had queued to relay; generous.
RELAY_AGAIN_LAST = 10_000
# A restarted instance waits this long for the stand-in that held its session to let go of
# its journal (it does so as soon as the broker closed its connection: milliseconds).
JOURNAL_WAIT_S = 10.0


STATUS = "edgenode/+/+/status"  # the nodes' births (positions)
OBSERVATIONS = "edgenode/+/central/obs"


def obs_topic(site: str) -> str:
    return f"edgenode/{site}/central/obs"


class Central:
    def __init__(self, url: str, *, group: str = "central", mqtt_version: str = "5",
                 sites: list[str] | None = None, instance: str | None = None,
                 events_log: Path | None = None, dedup_capacity: int = 500_000,
                 session_expiry_s: int = 0,
                 clock: Callable[[], float] = time.time):
        if mqtt_version != "5" and not sites:
            raise ValueError("central: MQTT 3.1.1 has no shared subscriptions: give the sites "
                             "this instance serves (--sites a,b)")
        self.instance = instance or f"central-{new_ulid()[-8:].lower()}"
        self.group = group
        self.clock = clock
        self.url = url
        self.v5 = mqtt_version == "5"
        self.session_expiry_s = session_expiry_s
        # Resumable sessions take part in standing in (edgenode/central/standin.py): a last
        # will saying "dead", naming the journal a stand-in writes into.
        self.resumable = self.v5 and session_expiry_s > 0
        # A resumable session needs a stable client id: give --instance with it.
        self.client = SharedAwareClient(
            BrokerOptions(url=url, client_id=self.instance, mqtt_version=mqtt_version,
                          max_inflight=200, clean_start=session_expiry_s <= 0,
                          will_topic=instance_topic(self.instance) if self.resumable else None,
                          will_payload=state_payload(self.instance, "dead", events_log)),
            session_expiry_s=session_expiry_s, on_connect=self._on_connect)
        self.sites = sites
        self.roster = Roster(self.instance)
        self.stand_ins: dict[str, StandIn] = {}
        self.stood_in = 0  # events taken from dead instances' sessions
        self.stand_in_latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.intake_ids = RecentIds(dedup_capacity)
        self.fused_ids = RecentIds(dedup_capacity)
        self.seqs = SeqAccounting()
        self.fusion: dict[str, SiteFusion] = {}
        self.frames: dict[str, LocalFrame] = {}
        self.nodes: dict[tuple[str, str], tuple[float, float, float]] = {}  # lat, lon, heading
        self.health: dict[tuple[str, str], str] = {}
        self.events = self.duplicates = self.unplaced = 0
        self.published_ids: set[str] = set()
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        # node publish -> our intake: tells the broker's and the nodes' share of the latency
        # from ours
        self.intake_lags: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        # The last ids the previous run journaled: it may have died between the journal and
        # the relay, so a redelivered one is relayed again (fusion takes an event_id once).
        self._recalled: set[str] = set()
        self._lock = threading.Lock()
        # Intake runs on our client's thread and on each stand-in's: one at a time.
        self._intake_lock = threading.Lock()
        self.journal = Journal(events_log, dedup_capacity) if events_log else None
        if self.journal is not None:
            # Not got: a stand-in holds our session; waited for once connected (_on_connect).
            self.journal.try_lock()
            self._recall(self.journal.read_new(), str(events_log))

    def _recall(self, ids: list[str], source: str) -> None:
        """Take back ids journaled by a previous run (or a stand-in): the events taken but
        not yet acknowledged when it died come again, and are duplicates."""
        with self._intake_lock:
            for event_id in ids[-self.intake_ids.capacity:]:
                self.intake_ids.add(event_id)
            self._recalled.update(ids[-RELAY_AGAIN_LAST:])
        log.info("central: %d event ids recalled from %s", len(ids), source)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.client.subscribe(STATUS, self._on_status)
        self.client.subscribe(OBSERVATIONS, self._on_obs)
        for topic in self._intake_topics("events"):
            self.client.subscribe(topic, self._on_event)
        for topic in self._intake_topics("health"):
            self.client.subscribe(topic, self._on_health)
        if self.resumable:
            self.client.subscribe(INSTANCE_STATES, self._on_instance)
        self.client.start()

    def _on_connect(self) -> None:
        """On our client's thread, before it reads the first message of this connection."""
        journal = self.journal
        if journal is not None and not journal.locked:
            # A stand-in held our session until our CONNECT took it back: wait until it has
            # handled what it read, then learn what it took (those may come again to us).
            waited = time.monotonic()
            if not journal.lock(JOURNAL_WAIT_S):
                log.error("central: %s: journal %s still locked after %.0f s: an event in "
                          "flight to the stand-in may be taken twice", self.instance,
                          journal.path, JOURNAL_WAIT_S)
            ids = journal.read_new()
            self._recall(ids, f"{journal.path} (the stand-in's share)")
            log.warning("central: %s took its session back from a stand-in: %.0f ms for its "
                        "journal lock, %d ids journaled since the start", self.instance,
                        (time.monotonic() - waited) * 1000, len(ids))
        if self.resumable:
            self.client.publish(instance_topic(self.instance), state_payload(
                self.instance, "online", self.journal.path if self.journal else None),
                retain=True)

    def _intake_topics(self, suffix: str) -> list[str]:
        if self.v5:
            return [f"$share/{self.group}/edgenode/+/+/{suffix}"]
        return [f"edgenode/{site}/+/{suffix}" for site in self.sites or []]

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        return self.client.connected.wait(timeout_s) and self.client.subscribed.wait(timeout_s)

    def stop(self) -> None:
        for stand_in in list(self.stand_ins.values()):
            stand_in.stop()
        if self.resumable and self.client.connected.is_set():
            # Not "dead": our session ends with this stop, there is nothing to take.
            with contextlib.suppress(RuntimeError):  # the connection went meanwhile
                self.client.publish(instance_topic(self.instance), state_payload(
                    self.instance, "stopped", None), retain=True).wait_for_publish(2.0)
        self.client.stop()
        if self.journal is not None:
            self.journal.close()

    def intake_lag_p99_ms(self) -> float | None:
        return _p99_ms(self.intake_lags)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            p99, stand_in_p99 = _p99_ms(self.latencies), _p99_ms(self.stand_in_latencies)
        return {"events": self.events, "duplicates": self.duplicates, "lost": self.seqs.lost,
                "fused_tracks": len(self.published_ids), "p99_latency_ms": p99,
                "stood_in": self.stood_in, "stood_in_p99_latency_ms": stand_in_p99}

    # -- standing in for a dead instance (edgenode/central/standin.py) -----------------------
    def _on_instance(self, msg: InboundMessage) -> None:
        try:
            state = json.loads(msg.payload)
            name, what = state["instance"], state["state"]
        except (ValueError, KeyError, TypeError):
            log.warning("central: unreadable instance state on %s", msg.topic)
            return
        self.roster.update(name, what)
        if (what != "dead" or name == self.instance or name in self.stand_ins
                or not self.roster.stands_in_for(name)):
            return
        journal = reachable_journal(state)
        if journal is None:
            log.error("central: cannot stand in for %s: its journal %s on %s is not here "
                      "(run the instances on one host, each with --events-log); its share "
                      "waits for its restart", name, state.get("journal"), state.get("host"))
            return
        stand_in = StandIn(self.url, name, journal, by=self.instance,
                           intake=self._intake_topics("events") + self._intake_topics("health"),
                           unwanted=[STATUS, OBSERVATIONS],
                           session_expiry_s=self.session_expiry_s,
                           journal_capacity=self.intake_ids.capacity, take=self._on_stood_in,
                           recall=lambda ids: self._recall(ids, f"{journal} ({name}'s)"),
                           gone=lambda s: self.stand_ins.pop(s.dead, None))
        self.stand_ins[name] = stand_in
        threading.Thread(target=stand_in.start, name=f"stand-in-{name}", daemon=True).start()

    def _on_stood_in(self, msg: InboundMessage, stand_in: StandIn) -> None:
        if msg.topic.endswith("/health"):
            self._on_health(msg)
        else:
            self._on_event(msg, stand_in)

    # -- stage 1: intake ------------------------------------------------------------------
    def _on_event(self, msg: InboundMessage, stand_in: StandIn | None = None) -> None:
        """`stand_in`: taken from a dead instance's session; journaled in its journal and
        relayed on the stand-in's connection, ahead of the acknowledgement there."""
        try:
            event = json.loads(msg.payload)
            event_id = event["event_id"]
            site, node = event["site"], event["node"]
        except (ValueError, KeyError, TypeError):
            log.warning("central: unreadable event on %s dropped", msg.topic)
            return
        client = stand_in.client if stand_in and stand_in.client else self.client
        journal = stand_in.journal if stand_in else self.journal
        behalf = stand_in.dead if stand_in else None
        with self._intake_lock:
            if not self.intake_ids.add(event_id):
                self.duplicates += 1
                if event_id in self._recalled:
                    self._recalled.discard(event_id)
                    client.publish(obs_topic(site), encode(_observation(
                        event, site, node, self.instance, behalf)), qos=1)
                return
            if stand_in:
                self.stood_in += 1
                stand_in.taken += 1
            else:
                self.events += 1
            if isinstance(event.get("t"), int | float):
                self.intake_lags.append(self.clock() - event["t"])
            if journal is not None:
                journal.append(event_id)
        client.publish(obs_topic(site), encode(_observation(event, site, node, self.instance,
                                                            behalf)), qos=1)

    def _on_health(self, msg: InboundMessage) -> None:
        parts = msg.topic.split("/")
        try:
            self.health[(parts[1], parts[2])] = json.loads(msg.payload).get("state", "?")
        except (ValueError, AttributeError):
            log.warning("central: unreadable health on %s", msg.topic)

    def _on_status(self, msg: InboundMessage) -> None:
        try:
            status = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(status, dict) or status.get("state") != "online":
            return
        try:
            pos = status["position"]
            site, node = status["site"], status["node"]
            self.nodes[(site, node)] = (float(pos["latitude_deg"]), float(pos["longitude_deg"]),
                                        float(status.get("mast_heading_deg", 0.0)))
        except (KeyError, TypeError, ValueError):
            log.warning("central: birth record on %s without a usable position", msg.topic)
            return
        self.frames.setdefault(site, LocalFrame(pos["latitude_deg"], pos["longitude_deg"]))

    # -- stage 2: fusion ------------------------------------------------------------------
    def _on_obs(self, msg: InboundMessage) -> None:
        o = json.loads(msg.payload)
        if not self.fused_ids.add(o["event_id"]):
            return  # two instances took copies of one event at once: fuse it once
        with self._intake_lock:
            self.intake_ids.add(o["event_id"])  # a later copy at our intake is a duplicate
        site, node = o["site"], o["node"]
        if o["type"] == "gap":
            self.seqs.dropped(site, node, o["session"], o["dropped"])
            return
        self.seqs.seen(site, node, o["session"], o["seq"])
        mine = o["by"] == self.instance
        fusion = self.fusion.setdefault(site, SiteFusion(site))
        if o["type"] == "end" or o.get("bearing_deg") is None:
            changed = fusion.end(node, o["object_id"], o["t"])
        else:
            placed = self.nodes.get((site, node))
            if placed is None:
                self.unplaced += 1  # no birth record yet: cannot place its bearing
                return
            east, north = self.frames[site].to_en(placed[0], placed[1])
            changed = fusion.observe(Observation(
                node=node, object_id=o["object_id"], t=o["t"], east=east, north=north,
                bearing_deg=o["bearing_deg"], bearing_err_deg=o["bearing_err_deg"],
                range_m=o.get("range_m"), range_err_m=o.get("range_err_m")))
        changed += fusion.expire(o["t"], MEMBER_SILENCE_S)
        for track in changed:
            if mine:
                track_members = [fusion.latest[k] for k in sorted(track.members)
                                 if k in fusion.latest]
                payload = fused_payload(site, track, track_members, self.frames[site],
                                        self.instance)
                self.client.publish(tracks_topic(site), encode(payload), qos=1)
                self.published_ids.add(track.id)
            track.published = True
        if mine and changed:
            with self._lock:
                (self.stand_in_latencies if o.get("for") else self.latencies).append(
                    self.clock() - o["t"])


def _p99_ms(latencies: deque[float]) -> float | None:
    samples = sorted(latencies)
    if not samples:
        return None
    return round(samples[min(len(samples) - 1, int(0.99 * len(samples)))] * 1000, 1)


def _observation(event: dict[str, Any], site: str, node: str, by: str,
                 behalf: str | None = None) -> dict[str, Any]:
    """The few fields fusion needs, so every instance parses a small message, not the event.
    `for`: the dead instance whose share a stand-in took it from (latency accounting)."""
    obs: dict[str, Any] = {"event_id": event["event_id"], "site": site, "node": node,
                           "session": event.get("session"), "type": event.get("type"),
                           "by": by, "t": event.get("t")}
    if behalf:
        obs["for"] = behalf
    if event.get("type") == "gap":
        dropped = event.get("dropped") or {}
        obs["session"] = dropped.get("session", event.get("session"))
        obs["dropped"] = dropped.get("count", 0) if dropped.get("stream") == "events" else 0
        return obs
    obs["seq"] = event.get("seq")
    obs["object_id"] = event.get("object_id")
    after = event.get("after") or {}
    az = after.get("azimuth_deg") if event.get("type") != "end" else None
    rng = after.get("range_m")
    obs["bearing_deg"] = az["value"] if az else None
    obs["bearing_err_deg"] = az["error"] if az else None
    obs["range_m"] = rng["value"] if rng else None
    obs["range_err_m"] = rng["error"] if rng else None
    return obs

"""Track events: new / update / end with before and after, rate-limited updates."""

from __future__ import annotations

import itertools

from edgenode.detect.events import TrackEvents


def state(status: str, label: str, n: int) -> dict:
    return {"object_id": "X", "status": status, "classification": [{"type": label}], "n": n}


def test_a_tentative_track_that_never_confirms_makes_no_events() -> None:
    ev = TrackEvents()
    assert ev.observe(0.0, "X", "tentative", "unknown", 1, lambda: state("tentative", "u", 1)) \
        is None
    assert ev.observe(0.5, "X", "ended", "unknown", 1, lambda: state("ended", "u", 1)) is None


def test_announce_tentative_sends_new_at_once() -> None:
    ev = TrackEvents(announce_tentative=True)
    event = ev.observe(0.0, "X", "tentative", "unknown", 1, lambda: state("tentative", "u", 1))
    assert event is not None and event["type"] == "new"


def test_new_update_end_carry_before_and_after() -> None:
    ev = TrackEvents(max_update_rate_hz=2.0)
    new = ev.observe(0.0, "X", "confirmed", "drone", 3, lambda: state("confirmed", "drone", 3))
    assert new == {"type": "new", "object_id": "X", "before": None,
                   "after": state("confirmed", "drone", 3)}
    upd = ev.observe(0.6, "X", "confirmed", "drone", 9, lambda: state("confirmed", "drone", 9))
    assert upd["type"] == "update"
    assert upd["before"] == new["after"] and upd["after"]["n"] == 9
    end = ev.observe(1.0, "X", "ended", "drone", 9, lambda: state("ended", "drone", 9))
    assert end["type"] == "end" and end["before"] == upd["after"]
    assert end["after"]["status"] == "ended"
    # Forgotten once ended: the same id again would be new.
    assert ev.observe(2.0, "X", "ended", "drone", 9, lambda: state("ended", "d", 9)) is None


def test_updates_are_limited_to_two_a_second_per_track() -> None:
    ev = TrackEvents(max_update_rate_hz=2.0)
    sent = []
    for k in range(100):  # 10 s of 10 Hz measurements on two tracks
        t = 0.1 * k
        for oid in ("A", "B"):
            e = ev.observe(t, oid, "confirmed", "drone", k, lambda: {"k": 0})
            if e is not None and e["type"] == "update":
                sent.append((oid, t))
    for oid in ("A", "B"):
        times = [t for o, t in sent if o == oid]
        assert 18 <= len(times) <= 20
        assert min(b - a for a, b in itertools.pairwise(times)) >= 0.5 - 1e-9


def test_class_and_status_changes_go_out_at_once_and_idle_tracks_stay_quiet() -> None:
    ev = TrackEvents(max_update_rate_hz=2.0)
    ev.observe(0.0, "X", "confirmed", "bird", 3, lambda: {})
    assert ev.observe(0.1, "X", "confirmed", "drone", 4, lambda: {"c": "drone"})["after"] == {
        "c": "drone"}
    assert ev.observe(0.2, "X", "coasting", "drone", 4, lambda: {})["type"] == "update"
    # No new measurement: nothing to say, however long it has been.
    assert ev.observe(5.0, "X", "coasting", "drone", 4, lambda: {}) is None

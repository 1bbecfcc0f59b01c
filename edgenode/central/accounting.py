"""De-duplication by event_id (bounded memory) and loss counting per (node, session, seq).
Pure: no I/O."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


class RecentIds:
    """The last `capacity` ids seen. QoS 1 repeats arrive within seconds to minutes (a
    reconnect, a backlog replay), so a window of a few minutes of the fleet's events is
    enough; memory stays fixed however long the service runs."""

    def __init__(self, capacity: int = 500_000):
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> bool:
        """Remember `event_id`; False when it was already there (a duplicate)."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


@dataclass
class _Session:
    low: int
    high: int
    seen: int = 0  # distinct seqs seen in [low, high] (de-duplicated upstream)
    explained: int = 0  # seqs a `gap` record says the node dropped on purpose

    @property
    def missing(self) -> int:
        return max(0, self.high - self.low + 1 - self.seen - self.explained)


class SeqAccounting:
    """Holes in each (site, node, session)'s seq: `lost` is how many seqs between the first
    and the last seen arrived neither as an event nor in a `gap` record. A late event (the
    node's backlog draining) fills its hole, so `lost` falls again. O(1) memory per session:
    only counts, since events are de-duplicated before they get here."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str, int], _Session] = {}

    def seen(self, site: str, node: str, session: int, seq: int) -> None:
        key = (site, node, session)
        s = self._sessions.get(key)
        if s is None:
            self._sessions[key] = _Session(low=seq, high=seq, seen=1)
            return
        if seq < s.low:
            # An older event came late (we started listening mid-session): widen; the seqs
            # between now count as missing until they arrive too.
            s.low = seq
            s.seen += 1
        elif seq > s.high:
            s.high = seq
            s.seen += 1
        else:
            s.seen += 1

    def dropped(self, site: str, node: str, session: int, count: int) -> None:
        s = self._sessions.get((site, node, session))
        if s is None:
            self._sessions[(site, node, session)] = s = _Session(low=0, high=-1)
        s.explained += count

    @property
    def lost(self) -> int:
        return sum(s.missing for s in self._sessions.values())

    def lost_by_node(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (site, node, _), s in self._sessions.items():
            if s.missing:
                out[f"{site}/{node}"] = out.get(f"{site}/{node}", 0) + s.missing
        return out

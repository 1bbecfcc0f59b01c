"""Which publish does the broker refuse by closing the connection?

MQTT 3.1.1 lets a broker refuse a PUBLISH it does not authorise either with a normal PUBACK or by
closing the network connection [MQTT-3.3.5-2]; RabbitMQ closes it (so may any broker for a
packet over its size limit, in either version). The client then sends the same message again on
its next connection, first of all it had not seen acknowledged, and is thrown off again, for
ever: nothing after it gets through (tests/link/test_link_failures.py, on RabbitMQ).

A broker handles one connection's messages in order, so the one it refuses is the oldest
unacknowledged message when it closes the connection. When the same message is that, at the end
of REFUSED_AFTER connections in a row each closed within REFUSAL_WINDOW_S of being made, it is
taken as refused: the client drops it and reports it like an MQTT 5 refusal (the link's outbox
then records a `broker_refused` gap), so the rest flows again. A message that is merely slow is
acknowledged within seconds on a working connection and never qualifies; one lost on a link that
dies three times running within seconds of connecting is reported, not lost silently.
"""

from __future__ import annotations

REFUSED_AFTER = 3
REFUSAL_WINDOW_S = 5.0


class RefusalWatch:
    def __init__(self) -> None:
        self._suspect: int | None = None  # mid of the oldest unacknowledged message
        self._times = 0

    def closed(self, oldest_unacked: int | None, lived_s: float) -> int | None:
        """The broker (or the network) ended a connection that lived `lived_s` with
        `oldest_unacked` (a mid, or None) still unacknowledged. Returns the mid to give up
        on, or None."""
        if oldest_unacked is None or lived_s > REFUSAL_WINDOW_S:
            self._suspect, self._times = None, 0
            return None
        if oldest_unacked == self._suspect:
            self._times += 1
        else:
            self._suspect, self._times = oldest_unacked, 1
        if self._times < REFUSED_AFTER:
            return None
        self._suspect, self._times = None, 0
        return oldest_unacked

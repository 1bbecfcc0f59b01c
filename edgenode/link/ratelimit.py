"""A token bucket: at most `burst` at once, refilled at `rate_per_s`. The link answers
rejected commands through one, so a flood of junk cannot flood the broker with results."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float,
                 clock: Callable[[], float] = time.monotonic):
        self.rate_per_s, self.burst, self._clock = rate_per_s, burst, clock
        self._tokens, self._at = burst, clock()

    def take(self) -> bool:
        """One token if there is one. Called from two threads without a lock: a lost update
        only moves the limit by a token."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

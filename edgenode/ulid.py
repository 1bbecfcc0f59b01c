"""ULIDs: 48-bit millisecond time + 80 random bits, Crockford base32. Unique and sortable."""

from __future__ import annotations

import os
import random
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
# Seeded once from the OS: uniqueness needs randomness, not secrecy, and a urandom call per
# millisecond lets other threads in on a busy node.
_random = random.Random(os.urandom(16))
_last_ms = -1
_last_rand = 0


def new_ulid(now_s: float | None = None) -> str:
    """A new ULID; within one millisecond the random part increases, so order is kept."""
    global _last_ms, _last_rand
    ms = int((time.time() if now_s is None else now_s) * 1000)
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            _last_rand += 1
        else:
            _last_ms = ms
            _last_rand = _random.getrandbits(79)  # room to increment
        value = (ms << 80) | (_last_rand & ((1 << 80) - 1))
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def ulid_time_s(ulid: str) -> float:
    value = 0
    for char in ulid:
        value = value * 32 + _ALPHABET.index(char)
    return (value >> 80) / 1000

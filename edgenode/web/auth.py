"""The technician's password (stored as a scrypt hash), sessions and login rate limits.

The password is set at provisioning: `edgenode status-page --hash-password` reads it and prints
the line for `[status_page] password_hash`. Only a hash is stored; a login compares in constant
time. Sessions are random tokens in an HttpOnly, SameSite=Strict cookie and expire after
`session_minutes` idle. Logins are limited per client address and overall, so a thousand
guesses cost the node a thousand cheap refusals, not a thousand scrypt runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque

SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~16 MiB, ~50 ms on a Pi 4 per login
MAX_SESSIONS = 32
MAX_CLIENTS = 1024  # addresses whose recent attempts are remembered


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash` (base64): the value for `[status_page] password_hash`."""
    if len(password) < 8:
        raise ValueError("the status page password needs at least 8 characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    b64 = base64.b64encode
    return (f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${b64(salt).decode()}$"
            f"{b64(digest).decode()}")


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode()[:1024], salt=base64.b64decode(salt),
                             dklen=len(expected), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


class Sessions:
    """Tokens -> expiry (monotonic). Bounded: the oldest session goes first."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._tokens: OrderedDict[str, float] = OrderedDict()

    def new(self) -> str:
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + self.idle_s
        while len(self._tokens) > MAX_SESSIONS:
            self._tokens.popitem(last=False)
        return token

    def valid(self, token: str | None) -> bool:
        """True for a live token (and its idle time starts again)."""
        if not token or len(token) > 64:
            return False
        expiry = self._tokens.get(token)
        if expiry is None:
            return False
        now = time.monotonic()
        if now > expiry:
            del self._tokens[token]
            return False
        self._tokens[token] = now + self.idle_s
        self._tokens.move_to_end(token)
        return True

    def end(self, token: str | None) -> None:
        if token:
            self._tokens.pop(token, None)


class LoginLimiter:
    """At most `per_client` attempts per address and `overall` in all per `window_s`."""

    def __init__(self, per_client: int = 5, overall: int = 30, window_s: float = 60.0) -> None:
        self.per_client, self.overall, self.window_s = per_client, overall, window_s
        self._clients: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        cut = now - self.window_s
        while self._all and self._all[0] < cut:
            self._all.popleft()
        tries = self._clients.setdefault(client, deque())
        self._clients.move_to_end(client)
        while tries and tries[0] < cut:
            tries.popleft()
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        if len(tries) >= self.per_client or len(self._all) >= self.overall:
            return False
        tries.append(now)
        self._all.append(now)
        return True

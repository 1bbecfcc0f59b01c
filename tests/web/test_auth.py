"""The status page's password hash, sessions and login limits."""

from __future__ import annotations

import pytest

from edgenode.web import auth
from edgenode.web.auth import LoginLimiter, Sessions, check_password, hash_password


def test_a_hash_checks_its_password_and_no_other():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$")
    assert check_password("correct horse", stored)
    assert not check_password("correct hors", stored)
    assert not check_password("correct horse", stored.replace("scrypt", "md5"))
    assert not check_password("correct horse", "garbage")
    assert hash_password("correct horse") != stored  # salted


def test_a_short_password_is_refused():
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


def test_sessions_expire_when_idle_and_end_on_logout(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    sessions = Sessions(idle_s=60)
    token = sessions.new()
    assert sessions.valid(token)
    now[0] += 59
    assert sessions.valid(token)  # use restarts the idle time
    now[0] += 59
    assert sessions.valid(token)
    now[0] += 61
    assert not sessions.valid(token)
    other = sessions.new()
    sessions.end(other)
    assert not sessions.valid(other)
    for bad in (None, "", "x" * 5000, "garbage"):
        assert not sessions.valid(bad)


def test_sessions_are_bounded():
    sessions = Sessions(idle_s=60)
    first = sessions.new()
    for _ in range(auth.MAX_SESSIONS):
        sessions.new()
    assert not sessions.valid(first)


def test_logins_are_limited_per_client_and_overall(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    limiter = LoginLimiter(per_client=3, overall=5, window_s=60)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert [limiter.allow("b") for _ in range(3)] == [True, True, False]  # overall 5 reached
    now[0] += 61
    assert limiter.allow("a") and limiter.allow("b")

"""The status page's HTTP server (aiohttp): pages, the live status stream, login, self-test.

One poller asks the daemon for its status once a second while anyone is looking, and every
browser gets that one answer (server-sent events): three browsers cost the daemon what one
does. Bodies are capped at 4 KiB, requests in flight at 64 and live streams at 16 (503
beyond); unknown routes are 404; no route changes the node's state
except a self-test, which needs the technician's session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from edgenode.config.models import StatusPageSection
from edgenode.daemon.control_socket import request
from edgenode.web import pages
from edgenode.web.auth import LoginLimiter, Sessions, check_password

log = logging.getLogger(__name__)
COOKIE = "edgenode_session"
POLL_S = 1.0
IDLE_STOP_S = 10.0  # stop polling this long after the last page or stream
# Requests in flight at once (live streams among them, which need no login): beyond these a
# flood is answered 503, so it never queues without bound for the daemon's control socket.
MAX_REQUESTS = 64
MAX_STREAMS = 16
MAX_BODY = 4096
LOG_LEVELS = ("debug", "info", "warning", "error")


class StatusPage:
    def __init__(self, section: StatusPageSection, control_sock: Path, *,
                 max_requests: int = MAX_REQUESTS, max_streams: int = MAX_STREAMS) -> None:
        self.section = section
        self.max_requests, self.max_streams = max_requests, max_streams
        self.control_sock = control_sock
        self.sessions = Sessions(section.session_minutes * 60)
        self.limiter = LoginLimiter()
        self.status: dict[str, Any] = {"ok": False, "error": "not asked yet"}
        self._status_t = 0.0
        self._wanted_until = 0.0
        self._changed = asyncio.Event()
        self.streams = 0
        self.in_flight = 0

    # -- the daemon ----------------------------------------------------------------------
    async def ask(self, message: dict[str, Any], timeout_s: float = 3.0) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(request, self.control_sock, message, timeout_s)
        except OSError as exc:
            return {"ok": False, "error": f"the daemon does not answer at {self.control_sock} "
                                          f"({exc.strerror or exc})"}

    async def poller(self) -> None:
        while True:
            if time.monotonic() < self._wanted_until or self.streams:
                self.status = await self.ask({"cmd": "status"})
                self._status_t = time.monotonic()
                self._changed.set()
                self._changed = asyncio.Event()
            await asyncio.sleep(POLL_S)

    async def current_status(self) -> dict[str, Any]:
        self._wanted_until = time.monotonic() + IDLE_STOP_S
        if time.monotonic() - self._status_t > 2 * POLL_S:
            self.status = await self.ask({"cmd": "status"})
            self._status_t = time.monotonic()
        return self.status

    async def audit(self, kind: str, **data: Any) -> None:
        answer = await self.ask({"cmd": "audit", "kind": kind, "data": data})
        if not answer.get("ok"):
            log.error("status page: %s not audited: %s", kind, answer.get("error"))

    # -- handlers ------------------------------------------------------------------------
    def _session(self, req: web.Request) -> bool:
        return self.sessions.valid(req.cookies.get(COOKIE))

    async def page(self, req: web.Request) -> web.Response:
        name = req.match_info.get("name", "overview")
        self._wanted_until = time.monotonic() + IDLE_STOP_S
        return web.Response(text=pages.render(name, logged_in=self._session(req)),
                            content_type="text/html")

    async def asset(self, req: web.Request) -> web.Response:
        name = req.match_info["asset"]
        return web.Response(text=pages.ASSETS[name][1], content_type=pages.ASSETS[name][0])

    async def api_status(self, req: web.Request) -> web.Response:
        return web.json_response(view(await self.current_status()))

    async def api_stream(self, req: web.Request) -> web.StreamResponse:
        if self.streams >= self.max_streams:
            raise web.HTTPServiceUnavailable(text=f"{self.streams} live views are open: "
                                             "close one, or reload later")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store"})
        await response.prepare(req)
        self.streams += 1
        try:
            await response.write(_sse(view(await self.current_status())))
            while True:
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=15)
                await response.write(_sse(view(self.status)))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.streams -= 1
        return response

    async def api_logs(self, req: web.Request) -> web.Response:
        level = req.query.get("level", "info")
        if level not in LOG_LEVELS:
            raise web.HTTPBadRequest(text=f"level must be one of {', '.join(LOG_LEVELS)}")
        return web.json_response(await self.ask({"cmd": "logs", "level": level, "lines": 300}))

    async def login(self, req: web.Request) -> web.Response:
        client = req.remote or "unknown"
        if not self.limiter.allow(client):
            log.warning("status page: login from %s refused: too many attempts", client)
            raise web.HTTPTooManyRequests(text="too many login attempts: wait a minute")
        form = await req.post()
        password = str(form.get("password", ""))
        stored = self.section.password_hash
        ok = bool(stored) and await asyncio.to_thread(check_password, password, stored or "")
        log.warning("status page: login from %s %s", client, "accepted" if ok else "refused")
        await self.audit("web_login", client=client, ok=ok)
        if not ok:
            raise web.HTTPUnauthorized(text="wrong password" if stored else
                                       "no technician password is set ([status_page] "
                                       "password_hash)")
        response = web.HTTPSeeOther(location="/selftest")
        response.set_cookie(COOKIE, self.sessions.new(), httponly=True, samesite="Strict",
                            max_age=int(self.section.session_minutes * 60), path="/")
        raise response

    async def logout(self, req: web.Request) -> web.Response:
        self.sessions.end(req.cookies.get(COOKIE))
        response = web.HTTPSeeOther(location="/")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def api_selftest(self, req: web.Request) -> web.Response:
        if not self._session(req):
            raise web.HTTPUnauthorized(text="log in with the technician password first")
        client = req.remote or "unknown"
        log.warning("status page: self-test started from %s", client)
        await self.audit("web_selftest", client=client)
        return web.json_response(await self.ask({"cmd": "selftest"}, timeout_s=60))

    @web.middleware
    async def bounded(self, req: web.Request, handler: Any) -> web.StreamResponse:
        if self.in_flight >= self.max_requests:
            raise web.HTTPServiceUnavailable(text="the status page is busy: try again shortly")
        self.in_flight += 1
        try:
            return await handler(req)
        finally:
            self.in_flight -= 1

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self.bounded, headers])
        app.router.add_get("/", self.page)
        app.router.add_get("/{name:(sky|selftest|logs)}", self.page)
        app.router.add_get("/assets/{asset:(app\\.js|app\\.css)}", self.asset)
        app.router.add_get("/api/status", self.api_status)
        app.router.add_get("/api/stream", self.api_stream)
        app.router.add_get("/api/logs", self.api_logs)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
        app.router.add_post("/api/selftest", self.api_selftest)

        async def start_poller(app: web.Application) -> Any:
            task = asyncio.create_task(self.poller())
            yield
            task.cancel()

        app.cleanup_ctx.append(start_poller)
        return app


@web.middleware
async def headers(req: web.Request, handler: Any) -> web.StreamResponse:
    response = await handler(req)
    response.headers.update({
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                   "frame-ancestors 'none'; form-action 'self'",
        "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff"})
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def _sse(data: dict[str, Any]) -> bytes:
    return b"event: status\ndata: " + json.dumps(data).encode() + b"\n\n"


def view(status: dict[str, Any]) -> dict[str, Any]:
    """What the pages show of the daemon's status (nothing that could act)."""
    if not status.get("ok"):
        return {"ok": False, "error": status.get("error", "no answer")}
    health = status.get("health") or {}
    return {
        "ok": True, "node": status.get("node"), "version": status.get("version"),
        "uptime_s": status.get("uptime_s"), "link": status.get("link"),
        "effector": status.get("effector_state") or {"state": status.get("effector")},
        "stages": status.get("stages"), "system": health.get("system"),
        "tracks": status.get("tracks") or [],
        "bearings": status.get("recent_bearings") or [], "t": time.time()}


def run(section: StatusPageSection, control_sock: Path) -> None:
    """Serve until SIGTERM/SIGINT, on each address in `section.bind`."""
    page = StatusPage(section, control_sock)
    web.run_app(page.app(), host=list(section.bind), port=section.port, print=None,
                access_log=None, handle_signals=True, shutdown_timeout=2)

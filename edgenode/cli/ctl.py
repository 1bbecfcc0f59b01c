"""`edgenode ctl`: the operator's tool. Keys, signed commands, status and a live watch.

    edgenode ctl [--broker URL] [--key FILE] [--site S] [--node N] [--json] ACTION [options]

Defaults come from the environment (EDGENODE_CTL_BROKER, _KEY, _SITE, _NODE, _CA_FILE,
_USERNAME, _PASSWORD_FILE, _TIMEOUT_S) or from a small TOML file (EDGENODE_CTL_CONFIG, else
~/.config/edgenode/ctl.toml) with the same names in lower case (`broker = "mqtts://..."`,
`key = "~/.config/edgenode/alice.key"`, `site = "north"`, ...); the command line wins, then the
environment, then the file. Without --site/--node, the one node online on the broker is used.

A command is signed, published to edgenode/<site>/<node>/cmd with an MQTT 5 response topic and
correlation data, and its result awaited. Exit codes: 0 ok, 1 refused or error, 2 no answer in
time (or the broker unreachable).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
import tomllib
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

from edgenode.cli import fused
from edgenode.control.keys import (
    ROLES,
    KeyFileError,
    generate_key_file,
    load_key_file,
    parse_key_list,
)
from edgenode.control.operator import build_command, encode
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient

SETTINGS = ("broker", "key", "site", "node", "ca_file", "username", "password_file",
            "timeout_s")
EXIT_OK, EXIT_REFUSED, EXIT_TIMEOUT = 0, 1, 2
COMMAND_ACTIONS = ("arm", "engage", "disengage", "safe", "reset", "selftest", "rebirth",
                   "keys-update", "allow-add", "allow-remove")
LIST_ACTIONS = ("safe", "selftest", "rebirth")


class CtlError(Exception):
    def __init__(self, message: str, code: int = EXIT_REFUSED):
        super().__init__(message)
        self.code = code


# -- settings ----------------------------------------------------------------------------
def settings(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(os.environ.get("EDGENODE_CTL_CONFIG")
                or Path.home() / ".config" / "edgenode" / "ctl.toml")
    from_file: dict[str, Any] = {}
    if path.exists():
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CtlError(f"ctl config {path}: {exc}") from None
        unknown = sorted(set(from_file) - set(SETTINGS))
        if unknown:
            raise CtlError(f"ctl config {path}: unknown key(s) {unknown}; known: "
                           f"{list(SETTINGS)}")
    out: dict[str, Any] = {}
    for name in SETTINGS:
        value = getattr(args, name, None)
        if value is None:
            value = os.environ.get(f"EDGENODE_CTL_{name.upper()}")
        if value is None:
            value = from_file.get(name)
        out[name] = value
    out["timeout_s"] = float(out["timeout_s"] or 5.0)
    if out["key"]:
        out["key"] = Path(os.path.expanduser(str(out["key"])))
    return out


def connect(cfg: dict[str, Any], role: str) -> MqttClient:
    if not cfg["broker"]:
        raise CtlError("no broker: give --broker URL (or EDGENODE_CTL_BROKER / ctl.toml)")
    password = None
    if cfg["password_file"]:
        password = Path(os.path.expanduser(str(cfg["password_file"]))).read_text().strip()
    options = BrokerOptions(
        url=str(cfg["broker"]), client_id=f"edgenode-ctl-{role}-{secrets.token_hex(4)}",
        username=cfg["username"], password=password,
        ca_file=Path(os.path.expanduser(str(cfg["ca_file"]))) if cfg["ca_file"] else None)
    client = MqttClient(options)
    client.start()
    if not client.connected.wait(cfg["timeout_s"]):
        error = client.last_error or "no connection"
        client.stop()
        raise CtlError(f"broker {cfg['broker']}: {error} within {cfg['timeout_s']:g} s",
                       EXIT_TIMEOUT)
    return client


class Collector:
    """Messages by topic (the last one wins), collected on paho's thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: dict[str, bytes] = {}
        self.events: list[tuple[str, bytes]] = []

    def __call__(self, msg: InboundMessage) -> None:
        with self.lock:
            self.latest[msg.topic] = msg.payload
            if msg.topic.endswith("/events"):
                self.events.append((msg.topic, msg.payload))


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")


def _online(payload: bytes) -> bool:
    value = _decode(payload)
    if isinstance(value, dict):
        value = value.get("status", value.get("state", "online"))
    return str(value).strip().lower() != "offline"


def nodes_seen(client: MqttClient, site: str | None, wait_s: float) -> dict[tuple[str, str],
                                                                            dict[str, Any]]:
    """Retained status/health/effector of every node (of one site), after `wait_s`."""
    collector = Collector()
    prefix = f"edgenode/{site or '+'}/+"
    for leaf in ("status", "health", "effector"):
        client.subscribe(f"{prefix}/{leaf}", collector)
    time.sleep(wait_s)
    nodes: dict[tuple[str, str], dict[str, Any]] = {}
    with collector.lock:
        for topic, payload in collector.latest.items():
            parts = topic.split("/")
            if len(parts) != 4:
                continue
            nodes.setdefault((parts[1], parts[2]), {})[parts[3]] = payload
    return nodes


def resolve_targets(client: MqttClient, cfg: dict[str, Any]) -> tuple[str, list[str]]:
    site, node = cfg["site"], cfg["node"]
    if site and node:
        return site, [n.strip() for n in str(node).split(",") if n.strip()]
    seen = nodes_seen(client, site, min(1.5, cfg["timeout_s"]))
    online = sorted(k for k, v in seen.items() if "status" in v and _online(v["status"]))
    if node:
        matches = [k for k in online if k[1] == node]
        if len(matches) == 1:
            return matches[0][0], [node]
    if len(online) == 1:
        return online[0][0], [online[0][1]]
    names = [f"{s}/{n}" for s, n in online] or ["none"]
    raise CtlError(f"give --site and --node: nodes online: {', '.join(names)}")


# -- commands ----------------------------------------------------------------------------
def params_for(args: argparse.Namespace) -> dict[str, Any]:
    action = args.ctl_action
    if action == "arm":
        return {"ttl_s": args.ttl}
    if action == "engage":
        target = {"track": args.track} if args.track else {"bearing_deg": args.bearing}
        if args.airspace_override:
            target["airspace_override"] = args.airspace_override
        if args.identity_override:
            target["identity_override"] = args.identity_override
        return {"duration_s": args.duration, **target}
    if action == "allow-add":
        expires = datetime.fromisoformat(args.expires.replace("Z", "+00:00"))
        if expires.tzinfo is None:
            raise CtlError(f"--expires {args.expires}: give a time zone (end it with Z for UTC)")
        allow: dict[str, Any] = {"uas_id": args.uas_id, "expires_at": expires.timestamp()}
        if args.note:
            allow["note"] = args.note
        return allow
    if action == "allow-remove":
        return {"uas_id": args.uas_id}
    if action == "keys-update":
        data = tomllib.loads(Path(args.keys_file).read_text(encoding="utf-8"))
        entries = data.get("effector", {}).get("keys", data.get("keys"))
        keys = parse_key_list(entries)
        params: dict[str, Any] = {"version": args.version, "keys": [
            k.model_dump(exclude_defaults=True) for k in keys]}
        if args.revoke:
            params["revoked"] = list(args.revoke)
        return params
    return {}


def send_commands(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    if not cfg["key"]:
        raise CtlError("no key: give --key FILE (or EDGENODE_CTL_KEY / ctl.toml)")
    identity = load_key_file(cfg["key"])
    client = connect(cfg, identity.id)
    try:
        if getattr(args, "fused", None):  # central's fused id -> the best placed node's track
            try:
                fsite, fnode, args.track = fused.resolve(client, cfg["site"], args.fused,
                                                         cfg["timeout_s"])
            except LookupError as exc:
                raise CtlError(str(exc)) from None
            cfg = {**cfg, "site": fsite, "node": fnode}
        params = params_for(args)
        site, nodes = resolve_targets(client, cfg)
        if len(nodes) > 1 and args.ctl_action not in LIST_ACTIONS:
            raise CtlError(f"{args.ctl_action} names exactly one node, got {nodes}")
        results: dict[str, dict[str, Any]] = {}
        done = threading.Event()
        waiting: dict[str, str] = {}
        lock = threading.Lock()

        def on_result(msg: InboundMessage) -> None:
            value = _decode(msg.payload)
            if not isinstance(value, dict):
                return
            with lock:
                node = waiting.get(str(value.get("id")))
                if node is not None and node not in results:
                    results[node] = value
                    if len(results) == len(waiting):
                        done.set()

        session = secrets.token_hex(6)
        for node in nodes:
            base = f"edgenode/{site}/{node}/cmd"
            client.subscribe(f"{base}/result", on_result)
            client.subscribe(f"{base}/result/{session}", on_result)
        for node in nodes:
            env = build_command(identity, site, node, args.ctl_action, params)
            with lock:
                waiting[env["id"]] = node
            client.publish(f"edgenode/{site}/{node}/cmd", encode(env), qos=1,
                           response_topic=f"edgenode/{site}/{node}/cmd/result/{session}",
                           correlation_data=env["id"].encode())
        done.wait(cfg["timeout_s"])
        with lock:
            answered = dict(results)
    finally:
        client.stop()
    code = EXIT_OK
    for node in nodes:
        result = answered.get(node)
        if result is None:
            code = EXIT_TIMEOUT
            _show(args, {"node": node, "status": "timeout",
                         "reason": f"no result within {cfg['timeout_s']:g} s"})
            continue
        if result.get("status") != "ok" and code == EXIT_OK:
            code = EXIT_REFUSED
        _show(args, {"node": node, **result})
    return code


def _show(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
        return
    reason = f": {result['reason']}" if result.get("reason") else ""
    state = f" [{result['state']}]" if result.get("state") else ""
    print(f"{result['node']}: {args.ctl_action} {result['status']}{reason}{state}")


# -- keygen, status, watch ---------------------------------------------------------------
def cmd_keygen(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    if not cfg["key"]:
        raise CtlError("keygen needs --key FILE: where to write the private key")
    try:
        snippet = generate_key_file(cfg["key"], args.id, args.role)
    except FileExistsError:
        raise CtlError(f"key file {cfg['key']} exists; not overwriting it") from None
    except ValueError as exc:
        raise CtlError(f"keygen: {str(exc).splitlines()[0]}") from None
    if args.json:
        print(json.dumps({"private_key_file": str(cfg["key"]), "public": snippet}))
    else:
        print(f"# private key written to {cfg['key']} (keep it secret); give the installer "
              f"this, for the node's config or keys directory ({cfg['key']}.pub):",
              file=sys.stderr)
        print(snippet, end="")
    return EXIT_OK


def _node_row(site: str, node: str, topics: dict[str, bytes]) -> dict[str, Any]:
    effector = _decode(topics["effector"]) if "effector" in topics else None
    health = _decode(topics["health"]) if "health" in topics else None
    row: dict[str, Any] = {
        "site": site, "node": node,
        "status": ("online" if _online(topics["status"]) else "offline")
        if "status" in topics else "unknown",
        "effector": effector.get("state") if isinstance(effector, dict) else None,
        "alarm": (effector.get("alarm") or {}).get("name")
        if isinstance(effector, dict) else None,
        "effector_reason": effector.get("reason") if isinstance(effector, dict) else None,
    }
    if isinstance(health, dict):
        parts = health.get("parts") or health.get("stages") or {}
        if isinstance(parts, dict):
            row["not_ok"] = sorted(name for name, part in parts.items()
                                   if isinstance(part, dict) and part.get("state") != "ok")
        airspace = health.get("airspace")
        if isinstance(airspace, dict):
            row["aircraft"] = airspace.get("aircraft") or []
            row["adsb_feed_ok"] = airspace.get("feed_ok")
    return row


def _aircraft_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Manned aircraft near each node (from its health report), nearest first."""
    lines = [f"{'NODE':<16}{'AIRCRAFT':<10}{'CALLSIGN':<10}{'DIST km':>8}{'BRG':>6}"
             f"{'HEIGHT m':>10}{'CLOSING m/s':>13}  VOLUME"]
    for r in rows:
        if r.get("adsb_feed_ok") is False:
            lines.append(f"{r['node']:<16}ADS-B feed lost: engagements refused")
        for a in r.get("aircraft") or []:
            height = a.get("height_m")
            closing = a.get("closing_mps")
            lines.append(
                f"{r['node']:<16}{a.get('icao', '?'):<10}{a.get('callsign') or '-':<10}"
                f"{a.get('distance_m', 0) / 1000:>8.1f}{a.get('bearing_deg', 0):>6.0f}"
                f"{'-' if height is None else f'{height:.0f}':>10}"
                f"{'-' if closing is None else f'{closing:.0f}':>13}  "
                f"{'INSIDE' if a.get('in_volume') else ''}")
    return lines if len(lines) > 1 else []


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'SITE':<14}{'NODE':<16}{'STATUS':<9}{'EFFECTOR':<10}DETAIL"]
    for r in rows:
        detail = f"ALARM {r['alarm']}" if r.get("alarm") else r.get("effector_reason") or ""
        if r.get("not_ok"):
            detail = f"{detail}; parts not ok: {', '.join(r['not_ok'])}".lstrip("; ")
        lines.append(f"{r['site']:<14}{r['node']:<16}{r['status']:<9}"
                     f"{r['effector'] or '-':<10}{detail}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    client = connect(cfg, "status")
    try:
        seen = nodes_seen(client, cfg["site"], args.wait)
    finally:
        client.stop()
    rows = [_node_row(s, n, t) for (s, n), t in sorted(seen.items())]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(_table(rows) if rows else "no nodes seen")
    return EXIT_OK if rows else EXIT_REFUSED


def _track_rows(events: list[tuple[str, bytes]], tracks: dict[tuple[str, str], dict[str, Any]],
                recent: deque[str]) -> None:
    """Apply track events to the table; `new` and `end` also go to the recent-events ticker."""
    for topic, payload in events:
        event = _decode(payload)
        if not isinstance(event, dict) or "object_id" not in event:
            continue
        key = (topic.split("/")[2], str(event["object_id"]))
        if event.get("type") in ("new", "end"):
            state = event.get("after") or event.get("before") or {}
            stamp = time.strftime("%H:%M:%S", time.localtime(event.get("t", time.time())))
            recent.append(f"{stamp} {event['type']:<4}" + _describe_track(key[0], state))
        if event.get("type") == "end" or not isinstance(event.get("after"), dict):
            tracks.pop(key, None)
        else:
            tracks[key] = event["after"]


def _describe_track(node: str, state: dict[str, Any]) -> str:
    def value(name: str) -> str:
        item = state.get(name)
        return f"{item['value']:.0f}" if isinstance(item, dict) and "value" in item else "-"

    classes = state.get("classification") or [{}]
    top = classes[0] if isinstance(classes, list) and classes else {}
    speed = state.get("speed_mps")
    return (f"{node:<16}{str(state.get('object_id', ''))[-8:]:<10}{state.get('status', ''):<11}"
            f"{top.get('type', '-'):<10}{top.get('confidence', 0):<6.2f}"
            f"{value('azimuth_deg'):>6}{value('range_m'):>8}"
            f"{(f'{speed:.1f}' if isinstance(speed, int | float) else '-'):>7}"
            f"  {_describe_identity(state.get('identity'))}")


def _describe_identity(identity: Any) -> str:
    """Remote ID beside the track: `id SURVEY-0001 trusted ALLOW-LISTED`,
    `id LIAR-1 SPOOFED: claims a position ...`, `silent`; empty without Remote ID."""
    if not isinstance(identity, dict):
        return ""
    verdict = str(identity.get("verdict") or "")
    if not identity.get("uas_id"):
        return verdict
    text = f"id {identity['uas_id']} "
    if verdict == "trusted":
        return text + "trusted" + (" ALLOW-LISTED" if identity.get("allowed") else "")
    reasons = identity.get("reasons") or []
    return text + verdict.upper() + (f": {str(reasons[0])[:80]}" if reasons else "")


def cmd_watch(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    client = connect(cfg, "watch")
    collector = Collector()
    prefix = f"edgenode/{cfg['site'] or '+'}/+"
    for leaf in ("status", "health", "effector", "events"):
        client.subscribe(f"{prefix}/{leaf}", collector)
    board = fused.FusedBoard()
    client.subscribe(fused.tracks_filter(cfg["site"]), board)
    tracks: dict[tuple[str, str], dict[str, Any]] = {}
    recent: deque[str] = deque(maxlen=8)
    end = time.monotonic() + args.for_s if args.for_s else None
    tty = sys.stdout.isatty()
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.5)
            with collector.lock:
                latest = dict(collector.latest)
                events, collector.events = collector.events, []
            _track_rows(events, tracks, recent)
            nodes: dict[tuple[str, str], dict[str, bytes]] = {}
            for topic, payload in latest.items():
                parts = topic.split("/")
                if len(parts) == 4 and parts[3] != "events":
                    nodes.setdefault((parts[1], parts[2]), {})[parts[3]] = payload
            rows = [_node_row(s, n, t) for (s, n), t in sorted(nodes.items())]
            if args.json:
                print(json.dumps({"t": time.time(), "nodes": rows,
                                  "tracks": [t for t in tracks.values()],
                                  "fused": list(board.tracks.values())}), flush=True)
                continue
            screen = [time.strftime("edgenode watch  %Y-%m-%d %H:%M:%S"), "",
                      _table(rows) if rows else "no nodes seen yet", "",
                      f"{'NODE':<16}{'TRACK':<10}{'STATUS':<11}{'CLASS':<10}{'CONF':<6}"
                      f"{'AZ':>6}{'RANGE':>8}{'SPEED':>7}  REMOTE ID"]
            screen += [_describe_track(key[0], state) for key, state in sorted(tracks.items())]
            aircraft = _aircraft_lines(rows)
            if aircraft:
                screen += ["", "manned aircraft nearby (ADS-B):", *aircraft]
            screen += ["", "fused tracks (edgenode central):", fused.HEADER, *board.rows()]
            screen += ["", "recent track events:", *recent]
            # Home + clear-to-end redraws in place without scrolling.
            print(("\x1b[H\x1b[J" if tty else "") + "\n".join(screen), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        client.stop()
    return EXIT_OK


# -- argparse ----------------------------------------------------------------------------
def cmd_ctl(args: argparse.Namespace) -> int:
    try:
        cfg = settings(args)
        if args.ctl_action == "keygen":
            return cmd_keygen(args, cfg)
        if args.ctl_action == "status":
            return cmd_status(args, cfg)
        if args.ctl_action == "watch":
            return cmd_watch(args, cfg)
        return send_commands(args, cfg)
    except (CtlError, KeyFileError) as exc:
        print(f"ctl: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CtlError) else EXIT_REFUSED
    except (OSError, ValueError) as exc:
        print(f"ctl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def register(add: Any) -> None:
    p = add("ctl", cmd_ctl, "the operator's tool: keys, signed commands, status, live watch")
    p.add_argument("--broker", help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--key", help="operator key file (from `ctl keygen`)")
    p.add_argument("--site", help="site id")
    p.add_argument("--node", help="node id (safe/selftest/rebirth: a comma list)")
    p.add_argument("--ca-file", dest="ca_file", help="CA certificate for mqtts")
    p.add_argument("--username")
    p.add_argument("--password-file", dest="password_file")
    p.add_argument("--timeout", dest="timeout_s", type=_positive,
                   help="seconds to wait for a result (default 5)")
    p.add_argument("--json", action="store_true", help="JSON lines out")
    sub = p.add_subparsers(dest="ctl_action", required=True, metavar="ACTION")
    keygen = sub.add_parser("keygen", help="write a key pair; print the public key for the "
                            "installer")
    keygen.add_argument("--id", required=True, help="key id, e.g. the operator's name")
    keygen.add_argument("--role", default="operator", choices=ROLES)
    arm = sub.add_parser("arm", help="ARM the effector for --ttl seconds")
    arm.add_argument("--ttl", type=_positive, required=True, help="seconds")
    engage = sub.add_parser("engage", help="switch the jammer on for --duration seconds")
    engage.add_argument("--duration", type=_positive, required=True, help="seconds")
    target = engage.add_mutually_exclusive_group(required=True)
    target.add_argument("--track", help="track id")
    target.add_argument("--bearing", type=float, help="true bearing, degrees")
    engage.add_argument("--airspace-override", metavar="REASON",
                        help="admin only: engage despite the airspace rules (a known "
                        "emergency); the reason is audited")
    engage.add_argument("--identity-override", metavar="REASON",
                        help="admin only: engage a track whose Remote ID is allow-listed and "
                        "trusted; the reason is audited")
    target.add_argument("--fused", help="a fused track id from `edgenode central` (or its "
                        "end): engages the best placed node's own track")
    for name, text in (("disengage", "switch the jammer off, stay ARMED"),
                       ("safe", "relay off and disarm (any key may)"),
                       ("reset", "clear a latched FAULT (admin)"),
                       ("selftest", "run the node's self-test"),
                       ("rebirth", "ask the node to publish its birth record again")):
        sub.add_parser(name, help=text)
    keys = sub.add_parser("keys-update", help="replace the node's key set (admin)")
    keys.add_argument("--version", type=int, required=True, help="must exceed the node's")
    keys.add_argument("--keys-file", required=True,
                      help="TOML with [[effector.keys]] entries (id, role, public_key)")
    keys.add_argument("--revoke", action="append", help="key id to revoke (repeatable)")
    allow = sub.add_parser("allow-add", help="allow-list a Remote ID UAS ID (admin): engaging "
                           "its track while its broadcast is trusted needs an override")
    allow.add_argument("--uas-id", required=True, help="the broadcast UAS ID (serial number)")
    allow.add_argument("--expires", required=True, help="ISO 8601 with zone, e.g. "
                       "2027-06-30T18:00:00Z")
    allow.add_argument("--note", help="what it is for (audited)")
    unallow = sub.add_parser("allow-remove", help="take a UAS ID off the allow-list (admin)")
    unallow.add_argument("--uas-id", required=True)
    status = sub.add_parser("status", help="table of nodes with their state and effector")
    status.add_argument("--wait", type=_positive, default=1.5,
                        help="seconds to collect retained state (default 1.5)")
    watch = sub.add_parser("watch", help="live view of nodes, tracks and effectors")
    watch.add_argument("--for", dest="for_s", type=_positive, help="stop after S seconds")

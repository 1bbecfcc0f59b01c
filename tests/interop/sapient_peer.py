"""A SAPIENT peer for the tests: a middleware-side TCP server built from the published BSI
Flex 335 v2.0 protos, written apart from edgenode's encoder (it uses none of its code).

It checks every message it receives against the ICD: the fields the .proto files mark
mandatory (`is_mandatory`), UUIDs and ULIDs where they mark them (`is_uuid`, `is_ulid`), and
the rules Dstl's Apex middleware applies: node ids are lowercase UUIDv4, ids of reports,
objects, tasks and alerts uppercase ULIDs, a timestamp within 0.9 s before to 0.1 s after
arrival, Registration first, the first StatusReport after the RegistrationAck INFO_NEW, two
DetectionReports of one object with one timestamp or >= 80 ms apart. Each breach is kept in
`violations`. It acknowledges a Registration (or refuses it with an Error, as Apex does, when
`refuse` > 0), and the test can send it Tasks or raw bytes.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from sapient_msg import proto_options_pb2
from sapient_msg.bsi_flex_335_v2_0.error_pb2 import Error
from sapient_msg.bsi_flex_335_v2_0.registration_ack_pb2 import RegistrationAck
from sapient_msg.bsi_flex_335_v2_0.sapient_message_pb2 import SapientMessage
from sapient_msg.bsi_flex_335_v2_0.status_report_pb2 import StatusReport

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
PEER_ID = "3f2b8c1e-5d4a-4b7e-9c2d-1a0e8f6b4c3d"
BEFORE_S, AFTER_S = 0.9, 0.1
SAME_OBJECT_MIN_S = 0.08


def icd_problems(message: Any, path: str = "") -> list[str]:
    """Breaches of the ICD's field annotations in `message` and its sub-messages."""
    problems = []
    desc = message.DESCRIPTOR
    for oneof in desc.oneofs:
        opts = oneof.GetOptions().Extensions[proto_options_pb2.oneof_options]
        if opts.is_mandatory and message.WhichOneof(oneof.name) is None:
            problems.append(f"{path}{desc.name}: mandatory oneof {oneof.name} not set")
    for fd in desc.fields:
        opts = fd.GetOptions().Extensions[proto_options_pb2.field_options]
        where = f"{path}{desc.name}.{fd.name}"
        repeated = fd.is_repeated
        if repeated:
            values = list(getattr(message, fd.name))
            present = bool(values)
        elif fd.has_presence:
            present = message.HasField(fd.name)
            values = [getattr(message, fd.name)] if present else []
        else:  # a plain proto3 scalar: present when not its default
            value = getattr(message, fd.name)
            present = value not in ("", 0, b"", False)
            values = [value] if present else []
        if opts.is_mandatory and not present:
            problems.append(f"{where}: mandatory field missing")
        for value in values:
            if opts.is_uuid and not UUID4.match(str(value)):
                problems.append(f"{where}: {value!r} is not a lowercase UUIDv4")
            if opts.is_ulid and not ULID.match(str(value)):
                problems.append(f"{where}: {value!r} is not an uppercase ULID")
            if fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.full_name != \
                    "google.protobuf.Timestamp":
                problems += icd_problems(value, where + "/")
    return problems


@dataclass
class Received:
    arrival: float
    message: SapientMessage
    connection: int
    kind: str | None = None
    problems: list[str] = field(default_factory=list)


class SapientPeer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.received: list[Received] = []
        self.violations: list[str] = []
        self.connections = 0
        self.closed_by_node = 0
        self.refuse = 0  # refuse this many Registrations with an Error
        self.refuse_with = "error"  # or "ack": a RegistrationAck with acceptance false
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    # -- what the tests use --------------------------------------------------------------------
    def of(self, kind: str, connection: int | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.kind == kind
                    and (connection is None or r.connection == connection)]

    def wait(self, kind: str, count: int = 1, timeout_s: float = 20, *,
             connection: int | None = None, where: Any = None) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = [r for r in self.of(kind, connection) if where is None or where(r.message)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def wait_connection(self, number: int, timeout_s: float = 20) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.connections < number and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.connections >= number

    def send(self, message: SapientMessage) -> None:
        message.node_id = message.node_id or PEER_ID
        if not message.HasField("timestamp"):
            message.timestamp.FromNanoseconds(time.time_ns())
        payload = message.SerializeToString()
        self.send_raw(struct.pack("<I", len(payload)) + payload)

    def send_raw(self, data: bytes) -> None:
        assert self._conn is not None, "no node connected"
        self._conn.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        if self._conn is not None:
            self._conn.close()

    # -- the server ----------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            if self._tls is not None:
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError) as exc:
                    self.violations.append(f"TLS handshake failed: {exc}")
                    conn.close()
                    continue
            if self._conn is not None:
                self._conn.close()
            self._conn = conn
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections),
                             daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buf = b""
        state = {"registered": False, "status_seen": False, "stamps": {}}
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                self.closed_by_node += 1
                return
            buf += data
            while len(buf) >= 4:
                (length,) = struct.unpack_from("<I", buf)
                if len(buf) < 4 + length:
                    break
                payload, buf = buf[4:4 + length], buf[4 + length:]
                self._check(conn, number, payload, time.time(), state)

    def _check(self, conn: socket.socket, number: int, payload: bytes, arrival: float,
               state: dict[str, Any]) -> None:
        message = SapientMessage()
        message.ParseFromString(payload)
        kind = message.WhichOneof("content")
        record = Received(arrival, message, number, kind, icd_problems(message))
        stamp = message.timestamp.ToNanoseconds() / 1e9
        if not arrival - BEFORE_S <= stamp <= arrival + AFTER_S:
            record.problems.append(f"timestamp {stamp - arrival:+.3f} s off arrival")
        if not state["registered"] and kind != "registration":
            record.problems.append(f"{kind} before Registration was acknowledged")
        if kind == "status_report" and not state["status_seen"]:
            state["status_seen"] = True
            if message.status_report.info != StatusReport.INFO_NEW:
                record.problems.append("first StatusReport after registration not INFO_NEW")
        if kind == "detection_report":
            oid = message.detection_report.object_id
            last = state["stamps"].get(oid)
            if last is not None and last != stamp and abs(stamp - last) < SAME_OBJECT_MIN_S:
                record.problems.append(f"object {oid}: reports {abs(stamp - last):.3f} s apart")
            state["stamps"][oid] = stamp
        with self._lock:
            self.received.append(record)
            self.violations += [f"{kind}: {p}" for p in record.problems]
        if kind == "registration":
            reply = SapientMessage(destination_id=message.node_id)
            if self.refuse > 0:
                self.refuse -= 1
                reason = "registration refused by the test"
                if self.refuse_with == "ack":
                    reply.registration_ack.CopyFrom(RegistrationAck(
                        acceptance=False, ack_response_reason=[reason]))
                else:
                    reply.error.CopyFrom(Error(packet=payload, error_message=[reason]))
            else:
                state["registered"], state["status_seen"] = True, False
                reply.registration_ack.CopyFrom(RegistrationAck(acceptance=True))
            reply.node_id = PEER_ID
            reply.timestamp.FromNanoseconds(time.time_ns())
            data = reply.SerializeToString()
            with contextlib.suppress(OSError):
                conn.sendall(struct.pack("<I", len(data)) + data)


def tls_peer(pki: Any) -> SapientPeer:
    """A peer that demands the node's client certificate (mutual TLS), from a
    tests.link.certs.Pki."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the node shows its certificate
    return SapientPeer(tls=context)

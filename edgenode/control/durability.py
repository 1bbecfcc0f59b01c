"""The effector's durable state and its troubles: the store writes that must not fail a command
(a full disk is named, not hidden), the latched fault restored at start-up (a damaged store
latches one too), the audit head kept outside the audit directory, and the effector's health
stage, which names the worst of them. Mixed into `Effector` (edgenode.control.effector)."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgenode.control.audit import chain_head, parse_head, read_anchor
from edgenode.control.deadlines import FAULT
from edgenode.control.store import disk_full

log = logging.getLogger("edgenode.control.effector")


class Durability:
    """The storage half of Effector: see the module docstring. Not usable on its own."""

    def _known_audit_head(self) -> tuple[int, str] | None:
        """The last audit record this node knows it wrote (kept in the store, outside the
        audit directory): a log ending before it was truncated."""
        text = self._store.get("audit_head")
        head = parse_head(text)
        if text is not None and head is None:
            log.error("effector: the stored audit head %r is not valid; ignored", text[:80])
        return head

    def _audit_head_written(self, seq: int, digest: str) -> None:
        head = json.dumps({"seq": seq, "hash": digest})
        self._durably("audit head", lambda: self._store.put("audit_head", head))

    def _audit_anchor_written(self, seq: int, digest: str) -> None:
        anchor = json.dumps({"seq": seq, "hash": digest})
        self._durably("audit anchor", lambda: self._store.put("audit_anchor", anchor))

    def _check_audit_anchor(self, directory: Path) -> list[str]:
        """anchor.json against the node's own copy: a forged one hides removed head
        segments. The copy is "null" while the node has written no anchor. A store without a
        copy (a node from before copies were kept) adopts what it finds, once."""
        found = read_anchor(directory)
        head = None if found is None else chain_head(found.get("seq"), found.get("hash"))
        text = self._store.get("audit_anchor")
        if text is None:
            if head is not None:
                self._audit_anchor_written(*head)
            else:
                self._durably("audit anchor", lambda: self._store.put("audit_anchor", "null"))
            return []
        mine = parse_head(text)
        if head == mine:
            return []
        why = (f"{directory / 'anchor.json'} is not the anchor this node wrote (seq "
               f"{'none' if mine is None else mine[0]}): audit records before it were removed")
        log.error("effector: %s", why)
        return [why]

    def _restore_fault(self) -> None:
        """Latch again what was latched; a store that was damaged (so nobody knows what
        was) or a latched value that cannot be read latches a FAULT too: fail closed, but
        start, and name the file."""
        if self._store.damaged:
            self._enter_fault("state_damaged", f"{self._store.damaged}: its latched fault, "
                              "replay cache and duty ledger are lost; check the relay, then an "
                              "admin reset")
            return
        latched = self._store.get("fault")
        if not latched:
            return
        try:
            fault = json.loads(latched)
            code, detail = str(fault["code"]), str(fault.get("detail", ""))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            log.error("effector: the latched fault in %s is unreadable: %r", self._store.path,
                      latched[:80])
            code, detail = "fault", f"unreadable latched fault in {self._store.path}"
        self._enter_fault(code, f"latched before restart: {detail}", alarm=code == "stuck_on")

    def _refresh_stage(self) -> None:
        """The effector's health: FAULT, then an unreadable key set, then storage trouble."""
        if self._state == FAULT and self._fault is not None:
            self._stage.set("degraded", f"FAULT {self._fault['code']}")
        elif self._ring.unreadable:
            self._stage.set("degraded", f"keys_unreadable: {self._ring.unreadable}")
        elif self._trouble:
            self._stage.set("degraded", "; ".join(f"{why} ({source})" for source, why
                                                  in sorted(self._trouble.items())))
        else:
            self._stage.set("ok")

    def _storage_trouble(self, source: str, why: str | None) -> None:
        """Note (or clear) storage trouble from the audit log or the store (any thread)."""
        if why is None and source not in self._trouble:
            return
        if why is None:
            self._trouble.pop(source, None)
            log.warning("effector: %s storage works again", source)
        elif self._trouble.get(source) != why:
            self._trouble[source] = why
        else:
            return
        self._refresh_stage()

    def _durably(self, what: str, write: Callable[[], Any]) -> tuple[bool, Any]:
        """Run a store write; on a full disk or a store error say so (health, the result's
        reason) instead of failing the command. (True, value) or (False, reason)."""
        try:
            value = write()
        except (sqlite3.Error, OSError) as exc:
            code = "disk_full" if disk_full(exc) else "store_failed"
            self._count(f"store_{code}")
            log.error("effector: %s not stored (%s: %s)", what, code, exc)
            self._storage_trouble("store", code)
            return False, f"{code}: the {what} could not be stored ({type(exc).__name__})"
        self._storage_trouble("store", None)
        return True, value

"""The Remote ID allow-list: UAS IDs that may fly here, each with an expiry and who approved
it, and the engage rule built on it. Pure: the entries come from config or from an
admin-signed command (edgenode.control verifies the signature and audits the change); the
clock comes from the caller (Unix seconds).

The rule: an engage on a track associated with an allow-listed ID whose broadcast is
`trusted` is refused unless the command carries an explicit admin override. An allow-listed ID
whose broadcast is suspect or spoofed protects nothing: copying a registered drone's serial
number must not buy a hostile one immunity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from edgenode.identify.remoteid_fusion import Association
from edgenode.identify.remoteid_honesty import TRUSTED

MAX_ENTRIES = 10_000


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class AllowEntry:
    uas_id: str
    expires_unix_s: float
    approved_by: str  # the admin's key id or name, as the signed command or config says
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"uas_id": self.uas_id, "expires": _iso(self.expires_unix_s),
                "approved_by": self.approved_by, "note": self.note}


class AllowList:
    def __init__(self, entries: list[AllowEntry] | tuple[AllowEntry, ...] = ()) -> None:
        self._entries: dict[str, AllowEntry] = {}
        for entry in entries:
            self._check(entry)
            self._entries[entry.uas_id] = entry

    @staticmethod
    def _check(entry: AllowEntry) -> None:
        if not entry.uas_id or len(entry.uas_id) > 20 or not entry.uas_id.isprintable():
            raise ValueError(f"allow-list uas_id {entry.uas_id!r}: 1..20 printable characters")
        if not entry.approved_by:
            raise ValueError(f"allow-list entry {entry.uas_id}: approved_by is required")

    def add(self, entry: AllowEntry, now: float) -> None:
        """Add or replace the entry for its UAS ID; an entry already expired is refused."""
        self._check(entry)
        if entry.expires_unix_s <= now:
            raise ValueError(f"allow-list entry {entry.uas_id}: expiry "
                             f"{_iso(entry.expires_unix_s)} is not in the future")
        if entry.uas_id not in self._entries and len(self._entries) >= MAX_ENTRIES:
            self.prune(now)
            if len(self._entries) >= MAX_ENTRIES:
                raise ValueError(f"allow-list full ({MAX_ENTRIES} entries)")
        self._entries[entry.uas_id] = entry

    def remove(self, uas_id: str) -> bool:
        return self._entries.pop(uas_id, None) is not None

    def allowed(self, uas_id: str | None, now: float) -> AllowEntry | None:
        entry = self._entries.get(uas_id) if uas_id else None
        return entry if entry is not None and entry.expires_unix_s > now else None

    def prune(self, now: float) -> list[AllowEntry]:
        """Drop expired entries; the ones dropped (for the audit log)."""
        gone = [e for e in self._entries.values() if e.expires_unix_s <= now]
        for e in gone:
            del self._entries[e.uas_id]
        return gone

    def entries(self) -> list[AllowEntry]:
        return sorted(self._entries.values(), key=lambda e: e.uas_id)


def engage_allowed(association: Association | None, allow: AllowList, now: float, *,
                   admin_override: bool = False) -> tuple[bool, str]:
    """(may engage, why) for an engage on a track with this association. The reason is
    written for the command's result and the audit record."""
    if association is None or association.uas_id is None:
        return True, "no Remote ID identity on this track"
    uas_id = association.uas_id
    entry = allow.allowed(uas_id, now)
    if entry is None:
        return True, f"{uas_id} is not on the allow-list"
    verdict = association.verdict
    if verdict.verdict != TRUSTED:
        why = verdict.reasons[0] if verdict.reasons else ""
        return True, (f"{uas_id} is allow-listed but its broadcast is {verdict.verdict}"
                      + (f": {why}" if why else ""))
    if admin_override:
        return True, (f"admin override: {uas_id} is allow-listed (approved by "
                      f"{entry.approved_by} until {_iso(entry.expires_unix_s)}) and trusted")
    return False, (f"refused: the track carries {uas_id}, allow-listed by {entry.approved_by} "
                   f"until {_iso(entry.expires_unix_s)}, and its broadcast is trusted; "
                   "engaging it needs an admin override")

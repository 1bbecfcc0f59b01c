"""Drops not yet written as gap records, merged so that the accounting stays the same size
however long the loss lasts.

A gap record used to be queued for every drop. While the outbox cannot commit (a failing SD
card), every overflowing event or audit batch is a drop, so the queue of gap records grew for
as long as the disk failed. Here drops of one stream, session and reason merge into one
`Loss`: its seq ranges join (the drops of one outage are one run: nothing newer is kept
while the disk fails) and its count adds up. The writer turns each `Loss` into one gap record
when it next commits; nothing is lost, only merged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgenode.link.outbox import Dropped
from edgenode.link.payloads import merge_ranges, seq_ranges


@dataclass
class Loss:
    """Records of one stream and session dropped for one reason: one gap record."""

    stream: str
    session: int
    reason: str
    ranges: list[list[int]]
    count: int


class LossLedger:
    """Losses waiting for the next commit; at most one per (stream, session, reason).
    Not thread-safe: the writer holds its lock around it."""

    def __init__(self) -> None:
        self._losses: dict[tuple[str, int, str], Loss] = {}

    def add(self, drops: Iterable[Dropped]) -> int:
        """Merge drops in; returns how many new losses (future gap records) they opened."""
        opened = 0
        for drop in drops:
            key = (drop.stream, drop.session, drop.reason)
            loss = self._losses.get(key)
            if loss is None:
                self._losses[key] = Loss(*key, seq_ranges(drop.seqs), len(drop.seqs))
                opened += 1
            else:
                loss.ranges = merge_ranges(loss.ranges + seq_ranges(drop.seqs))
                loss.count += len(drop.seqs)
        return opened

    def take(self) -> list[Loss]:
        losses, self._losses = list(self._losses.values()), {}
        return losses

    def __len__(self) -> int:
        return len(self._losses)

"""The relay board model of hardware/relay-board.md, stepped on an exact clock."""

from __future__ import annotations

import pytest

from hal.sim.relay_board import RelayBoard

DROPOUT_S = 0.200
K2_RELEASE_S = 0.020
PERIOD_S = 0.020


def heartbeat(board: RelayBoard, t0: float, t1: float) -> float:
    """Toggle the heartbeat every PERIOD_S from t0 to t1; returns the last rising edge."""
    t = t0
    level = board.heartbeat
    last_rise = t0
    while t <= t1 + 1e-9:
        level = not level
        board.set_heartbeat(level, t)
        if level:
            last_rise = t
        t += PERIOD_S
    return last_rise


def test_drive_with_heartbeat_radiates_at_operate() -> None:
    board = RelayBoard(dropout_s=DROPOUT_S, key="operate")
    board.set_drive(True, 0.0)
    assert not board.radiating(0.0), "no heartbeat yet: the contactor is open"
    heartbeat(board, 0.01, 1.0)
    assert board.radiating(1.0)
    assert [tr.radiating for tr in board.transitions] == [True]


def test_contactor_drops_within_dropout_when_heartbeat_stops() -> None:
    board = RelayBoard(dropout_s=DROPOUT_S, key="operate")
    board.set_drive(True, 0.0)
    last_rise = heartbeat(board, 0.01, 1.0)
    board.set_heartbeat(False, 1.03)  # a falling edge does not retrigger the monostable
    # The drive stays ON (a dead process leaves its GPIO level); only the heartbeat stops.
    assert board.radiating(last_rise + DROPOUT_S - 0.001)
    board.advance(last_rise + 5.0)
    off = board.transitions[-1]
    assert off.radiating is False
    assert off.t == pytest.approx(last_rise + DROPOUT_S + K2_RELEASE_S)
    assert board.relay_closed(), "the relay itself is still driven"
    assert not board.contactor_closed(off.t)


def test_drive_without_heartbeat_never_radiates() -> None:
    board = RelayBoard(dropout_s=DROPOUT_S, key="operate")
    board.set_drive(True, 0.0)
    board.advance(10.0)
    assert board.transitions == []
    assert board.aux_closed(), "the relay closed: aux reports it"


def test_a_stuck_high_heartbeat_is_one_edge_not_a_heartbeat() -> None:
    board = RelayBoard(dropout_s=DROPOUT_S, key="operate")
    board.set_drive(True, 0.0)
    board.set_heartbeat(True, 1.0)
    board.advance(10.0)
    assert [(round(tr.t, 3), tr.radiating) for tr in board.transitions] == [
        (1.0, True), (1.0 + DROPOUT_S + K2_RELEASE_S, False)]


def test_relay_operates_and_releases_with_its_times() -> None:
    board = RelayBoard(dropout_s=DROPOUT_S, key="operate")
    heartbeat(board, 0.0, 0.1)
    board.set_drive(True, 0.1)
    assert not board.aux_closed(0.1 + 0.014)
    board.advance(0.2)
    board.set_drive(False, 0.2)
    board.advance(0.3)
    assert [(round(tr.t, 3), tr.radiating) for tr in board.transitions] == [
        (0.115, True), (0.21, False)]


def test_test_position_never_radiates_but_relay_and_aux_work() -> None:
    board = RelayBoard(dropout_s=DROPOUT_S, key="test")
    board.set_drive(True, 0.0)
    heartbeat(board, 0.0, 2.0)
    assert board.transitions == []
    assert board.relay_closed() and board.aux_closed()
    assert board.contactor_closed(2.0)
    assert board.key_inputs() == (True, False)


def test_off_position_opens_the_chain() -> None:
    board = RelayBoard(dropout_s=DROPOUT_S, key="operate")
    board.set_drive(True, 0.0)
    heartbeat(board, 0.0, 0.5)
    assert board.radiating(0.5)
    board.set_key("off", 0.5)
    assert not board.radiating(0.5)
    assert not board.aux_closed(), "no coil power with the key at OFF"
    assert board.key_inputs() == (False, False)
    assert board.transitions[-1].t == 0.5 and board.transitions[-1].radiating is False


def test_relay_stuck_makes_aux_disagree_with_drive() -> None:
    board = RelayBoard(dropout_s=DROPOUT_S, key="operate")
    board.set_stuck(True, 0.0)
    assert board.drive is False and board.aux_closed()
    # Welded relay, but without a heartbeat the series contactor still keeps RF off.
    board.advance(3.0)
    assert not board.radiating(3.0)

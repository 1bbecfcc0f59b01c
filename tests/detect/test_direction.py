"""OneDirection: a comb's direction held over seconds (edgenode/detect/direction.py)."""

from __future__ import annotations

import numpy as np

from edgenode.detect.direction import OneDirection

HOP_S = 0.045


def feed(azimuths: list[float | None]) -> list[float | None]:
    track = OneDirection(HOP_S)
    held = []
    for a in azimuths:
        track.push(a)
        held.append(track.held())
    return held


def test_a_direction_held_in_every_second_of_three_is_taken_with_its_median() -> None:
    rng = np.random.default_rng(1)
    # A quarter of the blocks carry a comb, scattered 1 deg around 359.5 (across north).
    azimuths = [float((359.5 + rng.normal(0.0, 1.0)) % 360.0) if i % 4 == 0 else None
                for i in range(100)]
    held = feed(azimuths)
    seconds = OneDirection(HOP_S).segment * 3
    assert all(h is None for h in held[: seconds - 1])
    taken = [h for h in held if h is not None]
    assert taken and all(min(abs(h - 359.5), 360.0 - abs(h - 359.5)) < 1.0 for h in taken)


def test_a_machine_heard_until_the_masks_learn_it_is_not_held() -> None:
    """Every block from one direction for two seconds, then nothing: a steady machine
    switched on (its lines masked after 1-2 s)."""
    blocks = OneDirection(HOP_S).segment
    held = feed([120.0] * (2 * blocks) + [None] * (3 * blocks))
    assert all(h is None for h in held)


def test_bearings_at_random_are_not_a_direction() -> None:
    rng = np.random.default_rng(2)
    assert all(h is None for h in feed(rng.uniform(0.0, 360.0, 400).tolist()))


def test_a_block_whose_comb_points_elsewhere_does_not_say_drone() -> None:
    blocks = OneDirection(HOP_S).segment
    held = feed([40.0] * (3 * blocks) + [200.0])
    assert held[-2] is not None and held[-1] is None


def test_a_direction_beside_the_held_lines_is_not_taken() -> None:
    track = OneDirection(HOP_S)
    assert track.clear_of(100.0, None)
    assert track.clear_of(100.0, 130.0)
    assert not track.clear_of(100.0, 85.0)
    assert not track.clear_of(5.0, 350.0)

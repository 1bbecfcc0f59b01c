"""make mutation's sample and interval: the same seeded sample everywhere, per package."""

from __future__ import annotations

from tests.mutation.report import wilson
from tests.mutation.sample import sample

NAMES = ([f"edgenode.control.m.x_f__mutmut_{i}" for i in range(1, 500)]
         + [f"edgenode.link.m.x_g__mutmut_{i}" for i in range(1, 60)] + ["other.x__mutmut_1"])


def test_the_sample_is_per_package_seeded_and_whole_below_its_size() -> None:
    drawn = sample(NAMES, 50, seed=1)
    control = [n for n in drawn if n.startswith("edgenode.control.")]
    link = [n for n in drawn if n.startswith("edgenode.link.")]
    assert len(control) == 50 and len(link) == 50 and len(drawn) == 100
    assert sample(list(reversed(NAMES)), 50, seed=1) == drawn  # the listing order is moot
    assert sample(NAMES, 50, seed=2) != drawn
    assert len(sample(NAMES, 100, seed=1)) == 100 + 59  # link has only 59: all of them
    assert len(sample(NAMES, 0, seed=1)) == 499 + 59  # 0: every mutant of both packages


def test_the_interval_holds_the_rate_and_narrows_with_the_count() -> None:
    low, high = wilson(180, 200)
    assert low < 90.0 < high
    narrow = wilson(1800, 2000)
    assert low < narrow[0] < 90.0 < narrow[1] < high
    assert wilson(0, 0) == (0.0, 100.0)

"""Fixtures shared by the link's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgenode.link.link import Link


@pytest.fixture
def links() -> Iterator[list[Link]]:
    """Links a test made: stopped after it, whatever it asserted."""
    made: list[Link] = []
    yield made
    for link in made:
        link.stop()

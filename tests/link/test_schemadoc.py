"""`python -m edgenode.link.schemadoc`, the fix test_schemas.py names for a stale schema block
in docs/mqtt.md, run in-process on a copy: it brings a stale block back to its schema file
exactly as committed, touches nothing else, and finds docs/mqtt.md by itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgenode.link import schemadoc
from tests.conftest import ROOT

DOC = ROOT / "docs" / "mqtt.md"


def _stale_copy(path: Path) -> str:
    """docs/mqtt.md with its `events` and `cmd_result` blocks out of date; the original."""
    current = DOC.read_text(encoding="utf-8")
    stale = current
    for name in ("events", "cmd_result"):
        stale, n = re.subn(rf"(<!-- schema: {name} -->\n```json\n).*?```",
                           lambda m: m.group(1) + '{"stale": true}\n```', stale, flags=re.S)
        assert n == 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(stale, encoding="utf-8")
    return current


def test_a_stale_schema_block_is_brought_back_and_nothing_else_changes(tmp_path: Path) -> None:
    copy = tmp_path / "mqtt.md"
    current = _stale_copy(copy)
    assert schemadoc.main([str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == current  # the committed doc is up to date
    assert schemadoc.main([str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == current  # and refreshing again changes nothing


def test_without_an_argument_it_refreshes_docs_mqtt_md(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    current = _stale_copy(tmp_path / "docs" / "mqtt.md")
    monkeypatch.chdir(tmp_path)  # as from the repository's root
    assert schemadoc.main([]) == 0
    assert (tmp_path / "docs" / "mqtt.md").read_text(encoding="utf-8") == current

"""docs/selftest.md's table of twin faults is the one the fault tests use, and names every
fault the twin has."""

from __future__ import annotations

import re

from hal.sim.scenario import FAULT_NAMES
from tests.conftest import ROOT
from tests.selftest.faults import EXPECTED


def test_the_fault_table_in_the_docs_matches_the_tests() -> None:
    text = (ROOT / "docs" / "selftest.md").read_text()
    section = text[text.index("## Twin faults"):]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| [^|]+ \| `([^`]+)`[^|]* \| (PASS|WARN|FAIL) \|",
                      section, re.M)
    table = {fault: (check, result) for fault, check, result in rows}
    assert set(table) == set(FAULT_NAMES) == set(EXPECTED)
    for fault, (names, result, _) in EXPECTED.items():
        check, doc_result = table[fault]
        assert doc_result == result, fault
        if check == "i2c:NAME.answer":
            assert all(re.fullmatch(r"i2c:[a-z0-9-]+\.answer", n) for n in names), fault
        else:
            assert names == (check,), fault

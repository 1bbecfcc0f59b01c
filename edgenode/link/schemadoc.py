"""Refresh the schema blocks in docs/mqtt.md from edgenode/link/schemas/*.json.

    python -m edgenode.link.schemadoc docs/mqtt.md

Each block is `<!-- schema: NAME -->` followed by a ```json fence; tests fail while a block
differs from its file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from edgenode.link.payloads import load_schema

_BLOCK = re.compile(r"(<!-- schema: (\w+) -->\n```json\n)(.*?)(```)", re.S)


def refresh(text: str) -> str:
    return _BLOCK.sub(lambda m: m.group(1) + json.dumps(load_schema(m.group(2)), indent=2)
                      + "\n" + m.group(4), text)


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "docs/mqtt.md")
    path.write_text(refresh(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

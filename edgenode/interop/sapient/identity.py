"""The node's SAPIENT id: a lowercase UUIDv4 made once and kept in the state directory, so a
middleware sees the same node across restarts (its site/node names are not UUIDs)."""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path

log = logging.getLogger(__name__)
FILE_NAME = "sapient-node-id"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def load_node_id(state_dir: Path) -> str:
    path = state_dir / FILE_NAME
    if path.exists():
        text = path.read_text().strip()
        if UUID4.match(text):
            return text
        log.warning("sapient: %s holds %r, not a lowercase UUIDv4; making a new node id",
                    path, text[:40])
    node_id = str(uuid.uuid4())
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(node_id + "\n")
    os.replace(tmp, path)
    log.info("sapient: node id %s made and kept in %s", node_id, path)
    return node_id

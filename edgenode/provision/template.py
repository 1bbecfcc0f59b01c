"""Fill a hardware variant's config template with a node's identity, keeping its comments.

The template is edited line by line (a TOML writer would drop the comments that explain each
value to the technician); the result is parsed again and checked against what was asked.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from edgenode.provision.errors import ProvisionError

_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")
Value = str | float | int | bool | None   # None: remove the key


def toml_value(value: str | float | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=True)  # a JSON string is a TOML basic string


def _section_span(lines: list[str], section: str) -> tuple[int, int] | None:
    """[start, end) of the table `[section]` (header line included), None when absent."""
    start = None
    for index, line in enumerate(lines):
        match = _HEADER.match(line)
        if not match:
            continue
        if start is not None:
            return start, index
        if match.group(1) == section and not line.lstrip().startswith("[["):
            start = index
    return (start, len(lines)) if start is not None else None


def set_values(text: str, section: str, values: dict[str, Value]) -> str:
    lines = text.splitlines()
    span = _section_span(lines, section)
    if span is None:
        new = [f"{k} = {toml_value(v)}" for k, v in values.items() if v is not None]
        if new:
            lines += ["", f"[{section}]", *new]
        return "\n".join(lines) + "\n"
    start, end = span
    for key, value in values.items():
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        hit = next((i for i in range(start + 1, end) if pattern.match(lines[i])), None)
        if value is None:
            if hit is not None:
                del lines[hit]
                end -= 1
            continue
        line = f"{key} = {toml_value(value)}"
        if hit is not None:
            lines[hit] = line
            continue
        last = end - 1
        while last > start and not lines[last].strip():
            last -= 1
        lines.insert(last + 1, line)
        end += 1
    return "\n".join(lines) + "\n"


def render(template: str, sections: dict[str, dict[str, Value]], header: str) -> str:
    text = header + template
    for section, values in sections.items():
        text = set_values(text, section, values)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(f"the template gave invalid TOML after filling it in: {exc}") from None
    for section, values in sections.items():
        for key, value in values.items():
            got: Any = data.get(section, {}).get(key)
            if got != value:
                raise ProvisionError(f"the template's [{section}] {key} could not be set "
                                     f"(got {got!r}): fix the template")
    return text

"""Read the TOML file and turn every validation failure into a readable `Problem`."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edgenode.config.models import Config, RelaySection

DEFAULT_CONFIG_PATH = Path("/etc/edgenode/edgenode.toml")
_MISSING = object()


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    value: Any
    rule: str

    def __str__(self) -> str:
        if self.value is _MISSING:
            return f"{self.file}: {self.key}: {self.rule}"
        return f"{self.file}: {self.key} = {self.value!r}: {self.rule}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def config_path(cli_value: str | Path | None) -> Path:
    """--config, then $EDGENODE_CONFIG, then the default path."""
    if cli_value:
        return Path(cli_value)
    env = os.environ.get("EDGENODE_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem(str(path), "(file)", _MISSING, f"cannot read: {exc.strerror}")
        raise ConfigError([problem]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(str(path), "(file)", _MISSING, "not UTF-8 text")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem = Problem(str(path), "(syntax)", _MISSING, f"invalid TOML: {exc}")
        raise ConfigError([problem]) from None


def _problems(path: Path, exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(part) for part in err["loc"]) or "(whole file)"
        if err["type"] == "missing":
            out.append(Problem(str(path), key, _MISSING, "missing (required)"))
        elif err["type"] == "extra_forbidden":
            out.append(Problem(str(path), key, err["input"], "unknown key (check the spelling)"))
        else:
            rule = err["msg"].removeprefix("Value error, ")
            value = err["input"] if not isinstance(err["input"], dict) else _MISSING
            out.append(Problem(str(path), key, value, rule))
    return out


def _validate(model: type[BaseModel], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(path, exc)) from None


def load_config(path: str | Path) -> Config:
    """Parse and validate the whole file; raise ConfigError listing every problem."""
    path = Path(path)
    return _validate(Config, _read_toml(path), path)


# A table header, with the spacing and trailing comment TOML allows: `[relay]  # the board`.
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
# A dotted key naming the relay at the top level: `relay.drive_line = 17`.
_ROOT_RELAY_KEY = re.compile(r"^\s*relay\s*\.\s*(.*)$")


def _relay_lines(text: str) -> str | None:
    """The `[relay]` table of a file that is not valid TOML as a whole, as TOML text of
    its own: the lines under a `[relay]` header (up to the next header) and top-level dotted
    `relay.` keys (prefix cut). None when the file has neither."""
    table: str | None = ""  # "" is the top level
    found = False
    lines: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("["):
            # Any header ends the table before it; an array of tables or a broken header
            # starts one that is not the relay's.
            header = _HEADER.match(line)
            table = None
            if header and not line.lstrip().startswith("[["):
                table = re.sub(r"\s*\.\s*", ".", header.group(1).strip().strip('"'))
                found |= table == "relay"
            continue
        if table == "relay":
            lines.append(line)
        elif table == "":
            dotted = _ROOT_RELAY_KEY.match(line)
            if dotted:
                lines.append(dotted.group(1))
                found = True
    return "\n".join(lines) + "\n" if found else None


def load_relay_section(path: str | Path) -> RelaySection:
    """Read only `[relay]`, so the relay can be made safe whatever else is wrong.

    When the file as a whole is not valid TOML, the `[relay]` table is cut out of the text and
    parsed on its own.
    """
    path = Path(path)
    try:
        data = _read_toml(path)
    except ConfigError:
        text = path.read_text(encoding="utf-8", errors="replace")
        relay_text = _relay_lines(text)
        if relay_text is None:
            raise
        try:
            data = {"relay": tomllib.loads(relay_text)}
        except tomllib.TOMLDecodeError as exc:
            problem = Problem(str(path), "relay", _MISSING, f"invalid TOML: {exc}")
            raise ConfigError([problem]) from None
    if "relay" not in data:
        raise ConfigError([Problem(str(path), "relay", _MISSING, "missing (required)")]) from None
    relay = data["relay"]
    try:
        return RelaySection.model_validate(relay)
    except ValidationError as exc:
        problems = _problems(path, exc)
        raise ConfigError(
            [Problem(p.file, f"relay.{p.key}", p.value, p.rule) for p in problems]
        ) from None

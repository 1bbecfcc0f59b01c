"""Backends are named in a registry ("module:Class") and imported only when chosen, so a
board library that is absent here costs nothing until it is asked for. A name that is unknown
or not installed is an error naming it: never a silent fallback to another backend."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def load_backend(what: str, registry: dict[str, str], name: str,
                 error: Callable[[str], Exception] = ValueError) -> type:
    """The class registered as `name`; `what` names the port in messages ("gpio backend")."""
    try:
        module_name, cls_name = registry[name].split(":")
    except KeyError:
        raise error(f"{what} '{name}' unknown; choose one of {sorted(registry)}") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{what} '{name}' is not installed here: {exc}") from exc
    return getattr(module, cls_name)

"""First boot without a keyboard: edgenode-provision.toml on the boot partition.

The file says what `edgenode provision`'s options would (systemd/edgenode-provision.example
.toml). On success the file is removed (it is on a FAT partition anyone can read) and
edgenode-provision.done, with the summary and the CSR, is left beside it; on any mistake the
node stays unprovisioned, the file stays for correction and edgenode-provision.failed says why.
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgenode.provision.errors import ProvisionError
from edgenode.provision.identity import (
    Identity,
    NodeLayout,
    Position,
    check_broker,
    check_identifier,
    load_ca,
    parse_operator_key,
    read_ca_file,
    unique_keys,
)
from edgenode.provision.provision import Summary, provision

log = logging.getLogger(__name__)

class FirstBootFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str
    node: str
    broker: str
    hardware: str
    ca_pem: str | None = None
    ca_file: str | None = None
    operator_keys: list[dict[str, Any]] = Field(default_factory=list)
    latitude_deg: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude_deg: Annotated[float, Field(ge=-180, le=180)] | None = None
    altitude_m: Annotated[float, Field(ge=-500, le=9000)] | None = None
    mast_heading_deg: Annotated[float, Field(ge=0, lt=360)] | None = None
    force: bool = False


def load_firstboot(path: Path) -> tuple[Identity, bool]:
    """The identity the file gives, and whether it may replace one; ProvisionError otherwise."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ProvisionError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(f"{path}: not valid TOML: {exc}") from None
    try:
        spec = FirstBootFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            key = ".".join(str(p) for p in err["loc"])
            rule = {"missing": "missing (required)",
                    "extra_forbidden": "unknown key (check the spelling)"}.get(err["type"],
                                                                               err["msg"])
            problems.append(f"{key}: {rule}")
        raise ProvisionError(f"{path}: " + "; ".join(problems)) from None
    where = f"{path}:"
    check_identifier(f"{where} site", spec.site)
    check_identifier(f"{where} node", spec.node)
    check_broker(f"{where} broker", spec.broker)
    if (spec.ca_pem is None) == (spec.ca_file is None):
        raise ProvisionError(f"{path}: give the CA once: ca_pem (pasted) or ca_file (beside "
                             "this file)")
    if spec.ca_pem is not None:
        ca = load_ca(f"{where} ca_pem", spec.ca_pem.strip().encode() + b"\n", "(pasted)")
    else:
        ca = read_ca_file(f"{where} ca_file", path.parent / str(spec.ca_file))
    keys = []
    for index, entry in enumerate(spec.operator_keys):
        keys += parse_operator_key(f"{path}: operator_keys[{index}]", entry)
    position = None
    given = [spec.latitude_deg, spec.longitude_deg, spec.altitude_m]
    if any(v is not None for v in given):
        if any(v is None for v in given):
            raise ProvisionError(f"{path}: latitude_deg, longitude_deg and altitude_m go "
                                 "together")
        position = Position(*given)  # type: ignore[arg-type]
    identity = Identity(spec.site, spec.node, spec.broker, spec.hardware, ca, unique_keys(keys),
                        position, spec.mast_heading_deg)
    return identity, spec.force


def apply_firstboot(path: Path, layout: NodeLayout, *, remove_after: bool = False,
                    templates: Path | None = None, owner: str | None = "edgenode") -> Summary:
    """Provision from the file; on success drop it (secrets) and leave a .done summary."""
    done = path.with_suffix(".done")
    failed = path.with_suffix(".failed")
    try:
        identity, force = load_firstboot(path)
        summary = provision(identity, layout, force=force, templates=templates, owner=owner,
                            hardware_option=f"{path}: hardware")
    except ProvisionError as exc:
        _write_note(failed, f"edgenode first boot: NOT provisioned: {exc}\n"
                    f"Fix {path.name} and reboot (or run edgenode provision by hand).\n")
        raise
    text = "\n".join(summary.lines()) + "\n\n" + summary.csr_pem
    _write_note(done, text)
    failed.unlink(missing_ok=True)
    if remove_after:
        path.unlink()
        log.info("provision: %s applied and removed (%s written)", path, done.name)
    return summary


def _write_note(path: Path, text: str) -> None:
    # The boot partition is FAT: no modes or owners; write then rename for a whole file.
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("provision: cannot write %s: %s", path, exc)

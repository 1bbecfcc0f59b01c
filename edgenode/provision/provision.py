"""`edgenode provision`: write a node's identity, all of it or none of it."""

from __future__ import annotations

import datetime as dt
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edgenode.config import ConfigError, load_config
from edgenode.provision.certs import csr_pem, fingerprint, key_pem, new_key
from edgenode.provision.errors import ProvisionError
from edgenode.provision.files import Staged, owner_ids
from edgenode.provision.identity import Identity, NodeLayout, find_template
from edgenode.provision.template import Value, render

log = logging.getLogger(__name__)
NODE_KEYS = ("latitude_deg", "longitude_deg", "altitude_m", "mast_heading_deg")


@dataclass(frozen=True)
class Summary:
    config: Path
    site: str
    node: str
    broker: str
    hardware: str
    key: Path
    csr: Path
    csr_pem: str
    fingerprint: str
    operators: tuple[str, ...]
    from_template: tuple[str, ...]   # [node] values still the template's example

    def lines(self) -> list[str]:
        out = [
            f"provisioned site {self.site} node {self.node} ({self.hardware})",
            f"  config      {self.config}",
            f"  broker      {self.broker}",
            f"  node key    {self.key}",
            f"  key SHA-256 {self.fingerprint}",
            f"  CSR         {self.csr} (have the control room sign it, then: edgenode "
            "provision --install-cert node.crt)",
            f"  operators   {', '.join(self.operators) or 'none (no command will be obeyed)'}",
        ]
        if self.from_template:
            out.append(f"  CHECK       node.{', node.'.join(self.from_template)} are the "
                       "template's example values: set them for this mast")
        return out


def existing_identity(layout: NodeLayout) -> str | None:
    """A description of the identity already there, None when the node has none."""
    if not layout.config.exists() and not layout.key.exists():
        return None
    try:
        node = tomllib.loads(layout.config.read_text(encoding="utf-8")).get("node", {})
        return f"site {node.get('site', '?')} node {node.get('id', '?')} ({layout.config})"
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return f"{layout.key if layout.key.exists() else layout.config}"


def _sections(identity: Identity, layout: NodeLayout,
              etc: Path | None = None) -> dict[str, dict[str, Value]]:
    """The identity's config sections, naming files under `etc` (default: where they are on
    the node; the staging root's copy for validating before anything is installed)."""
    etc = etc or layout.node_etc
    node: dict[str, Value] = {"site": identity.site, "id": identity.node,
                              "hardware": identity.hardware}
    if identity.position is not None:
        node.update(latitude_deg=identity.position.latitude_deg,
                    longitude_deg=identity.position.longitude_deg,
                    altitude_m=identity.position.altitude_m)
    if identity.mast_heading_deg is not None:
        node["mast_heading_deg"] = identity.mast_heading_deg
    return {
        "node": node,
        # Mutual TLS: the certificate names the node; no user name or password is needed.
        "broker": {"url": identity.broker_url, "ca_file": str(etc / "ca.pem"),
                   "cert_file": str(etc / "node.crt"), "key_file": str(etc / "node.key"),
                   "username": None, "password_credential": None, "password_file": None},
        "effector": {"keys_dir": str(etc / "operators")},
    }


def _operator_file(key_id: str, role: str, public_key: str) -> bytes:
    return (f"# installed by edgenode provision\nid = \"{key_id}\"\nrole = \"{role}\"\n"
            f"public_key = \"{public_key}\"\n").encode()


def provision(identity: Identity, layout: NodeLayout, *, force: bool = False,
              templates: Path | None = None, owner: str | None = "edgenode",
              hardware_option: str = "--hardware") -> Summary:
    """Write config, node key (0600), CSR, CA and operator keys; raise ProvisionError first."""
    there = existing_identity(layout)
    if there is not None and not force:
        raise ProvisionError(f"this node already has an identity: {there}; pass --force to "
                             "replace it (a new node key: the control room must sign the new "
                             "CSR)")
    template_path = find_template(layout, identity.hardware, templates, hardware_option)
    try:
        template = template_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"template {template_path}: cannot read: {exc}") from None
    header = (f"# Written by edgenode provision on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC "
              f"from {template_path.name}.\n")
    text = render(template, _sections(identity, layout), header)
    uid, gid = owner_ids(owner)
    key = new_key()
    csr = csr_pem(key, identity.client_name, identity.site)
    with Staged() as staged:
        staged.make_dir(layout.etc, 0o750, gid)
        staged.make_dir(layout.operators, 0o750, gid)
        tmp_config = staged.add(layout.config, text.encode(), 0o640, gid=gid)
        # Validated as it will read on the node, its files looked up under this root.
        check = tmp_config.with_name(tmp_config.name + ".check")
        check.write_text(render(template, _sections(identity, layout, layout.etc), header))
        try:
            load_config(check)
        except ConfigError as exc:
            problems = "; ".join(f"{p.key}: {p.rule}" for p in exc.problems)
            raise ProvisionError(f"the config made from {template_path.name} is not valid: "
                                 f"{problems}") from None
        finally:
            check.unlink(missing_ok=True)
        staged.add(layout.key, key_pem(key), 0o600, uid=uid, gid=gid)
        staged.add(layout.csr, csr, 0o644, gid=gid)
        staged.add(layout.ca, identity.ca_pem, 0o644, gid=gid)
        wanted = set()
        for op in identity.operator_keys:
            path = layout.operators / f"{op.id}.pub"
            wanted.add(path.name)
            staged.add(path, _operator_file(op.id, op.role, op.public_key), 0o640, gid=gid)
        if layout.operators.is_dir():
            for old in layout.operators.glob("*.pub"):
                if old.name not in wanted:
                    staged.drop(old)
        # The old certificate belongs to the old key.
        staged.drop(layout.cert)
        staged.commit()
    log.info("provision: site %s node %s written to %s", identity.site, identity.node,
             layout.etc)
    given = {k for k in NODE_KEYS if (identity.position is not None and k != "mast_heading_deg")
             or (k == "mast_heading_deg" and identity.mast_heading_deg is not None)}
    return Summary(layout.config, identity.site, identity.node, identity.broker_url,
                   identity.hardware, layout.key, layout.csr, csr.decode(),
                   fingerprint(key.public_key()),
                   tuple(op.id for op in identity.operator_keys),
                   tuple(k for k in NODE_KEYS if k not in given))

"""`edgenode provision`: give an installed node its identity (see edgenode.provision).

    edgenode provision --site S --node N --broker mqtts://host:8883 --ca CA.pem \
        --hardware VARIANT [--operator-key FILE ...] [--force] [--root DIR]
    edgenode provision --install-cert node.crt [--root DIR]
    edgenode provision --from-file /boot/firmware/edgenode-provision.toml [--remove-after]
    edgenode provision --status [--root DIR]

Exit codes: 0 done, 1 refused (the message says why; nothing was written), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from edgenode.provision import (
    Identity,
    NodeLayout,
    ProvisionError,
    apply_firstboot,
    install_cert,
    provision,
    status_lines,
)
from edgenode.provision.identity import (
    Position,
    check_broker,
    check_identifier,
    read_ca_file,
    read_operator_key,
    unique_keys,
)

IDENTITY_OPTIONS = ("site", "node", "broker", "ca", "hardware")


def _identity(args: argparse.Namespace) -> Identity:
    missing = [f"--{name}" for name in IDENTITY_OPTIONS if getattr(args, name) is None]
    if missing:
        raise ProvisionError(f"missing {', '.join(missing)} (or give --install-cert CERT or "
                             "--from-file FILE)")
    keys = []
    for path in args.operator_key or []:
        keys += read_operator_key(Path(path))
    position = Position(*args.position) if args.position else None
    return Identity(check_identifier("--site", args.site), check_identifier("--node", args.node),
                    check_broker("--broker", args.broker), args.hardware,
                    read_ca_file("--ca", Path(args.ca)), unique_keys(keys), position,
                    args.mast_heading)


def cmd_provision(args: argparse.Namespace) -> int:
    layout = NodeLayout(Path(args.root))
    templates = Path(args.templates) if args.templates else None
    owner = args.owner or None
    try:
        if args.status:
            print("\n".join(status_lines(layout)))
            return 0
        if args.install_cert:
            print(install_cert(Path(args.install_cert), layout, owner=owner))
            return 0
        if args.from_file:
            summary = apply_firstboot(Path(args.from_file), layout,
                                      remove_after=args.remove_after, templates=templates,
                                      owner=owner)
        else:
            summary = provision(_identity(args), layout, force=args.force, templates=templates,
                                owner=owner)
    except ProvisionError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        if not args.status:
            print("provision: nothing was changed", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


def _heading(text: str) -> float:
    value = float(text)
    if not 0 <= value < 360:
        raise argparse.ArgumentTypeError(f"{text}: a heading is 0 <= deg < 360")
    return value


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("provision", cmd_provision,
            "give this node its identity: config from a hardware template, TLS key and CSR, "
            "CA, operator keys; or install its signed certificate")
    p.add_argument("--site", help="site id (an MQTT topic level)")
    p.add_argument("--node", help="node id (an MQTT topic level)")
    p.add_argument("--broker", help="broker URL, mqtts://host:8883")
    p.add_argument("--ca", help="the control room's CA certificate (PEM)")
    p.add_argument("--hardware", help="hardware variant: a template in hardware/configs")
    p.add_argument("--operator-key", action="append", metavar="FILE",
                   help="an operator's public key file from `edgenode ctl keygen` (repeatable)")
    p.add_argument("--position", nargs=3, type=float, metavar=("LAT", "LON", "ALT_M"),
                   help="the mast's position (default: the template's, flagged in the summary)")
    p.add_argument("--mast-heading", type=_heading, metavar="DEG",
                   help="where the array's x axis points, clockwise from true north")
    p.add_argument("--force", action="store_true",
                   help="replace an existing identity (a new key: the CSR must be signed again)")
    p.add_argument("--install-cert", metavar="CERT",
                   help="install the node's signed certificate after checking it matches the "
                   "node key and chains to the CA")
    p.add_argument("--status", action="store_true",
                   help="show this node's identity, key fingerprint and certificate expiry")
    p.add_argument("--from-file", metavar="FILE",
                   help="take everything from a first-boot file (edgenode-provision.toml)")
    p.add_argument("--remove-after", action="store_true",
                   help="with --from-file: remove the file once applied (it may hold secrets)")
    p.add_argument("--root", default="/", help="install under this directory (tests, images)")
    p.add_argument("--templates", help="hardware template directory (default: the installed "
                   "release's hardware/configs, then the checkout's)")
    p.add_argument("--owner", default="edgenode",
                   help="the daemon's user, owner of the node key (default %(default)s; "
                   "skipped when there is no such user)")

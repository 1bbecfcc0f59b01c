"""Provisioning: gives an installed node its identity. Writes /etc/edgenode/edgenode.toml from
a hardware variant's template, generates the node's TLS key and CSR, installs the CA and the
operators' public keys, checks a signed certificate against the key and the CA, and applies the
first-boot file from the boot partition. Every write goes to a temporary file first and is
renamed into place only when everything is valid, so an error leaves nothing half-written.

May import `edgenode.config` and `cryptography`; no hardware, no network, no daemon or command
module."""

from edgenode.provision.certs import CertInfo, install_cert
from edgenode.provision.errors import ProvisionError
from edgenode.provision.firstboot import apply_firstboot, load_firstboot
from edgenode.provision.identity import Identity, NodeLayout
from edgenode.provision.provision import Summary, provision
from edgenode.provision.status import CertExpiry, cert_expiry, status_lines

__all__ = ["CertExpiry", "CertInfo", "Identity", "NodeLayout", "ProvisionError", "Summary",
           "apply_firstboot", "cert_expiry", "install_cert", "load_firstboot", "provision",
           "status_lines"]

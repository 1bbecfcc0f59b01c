"""`edgenode provision`: a node's identity is written whole or not at all, with a clear reason."""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgenode.cli.main import main
from edgenode.control.keys import load_config_keys
from edgenode.provision import cert_expiry
from tests.install.helpers import (
    ControlRoomCA,
    listing,
    load_installed_config,
    operator_key,
    tree_hash,
)

VARIANT = "pi5-iwr6843-uma16"


@pytest.fixture
def site(tmp_path: Path) -> dict:
    ca = ControlRoomCA()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    return {"root": tmp_path / "root", "ca": ca, "ca_file": ca.write(inputs / "ca.pem"),
            "alice": operator_key(inputs, "alice"), "bob": operator_key(inputs, "bob", "admin"),
            "inputs": inputs}


def provision(site: dict, *extra: str, broker: str = "mqtts://broker.example.net:8883",
              ca: str | None = None, hardware: str = VARIANT, node: str = "mast-07") -> int:
    return main(["provision", "--site", "north", "--node", node, "--broker", broker,
                 "--ca", ca or str(site["ca_file"]), "--hardware", hardware,
                 "--operator-key", str(site["alice"]), "--root", str(site["root"]), *extra])


def etc(site: dict) -> Path:
    return site["root"] / "etc/edgenode"


def fingerprint_line(out: str) -> str:
    return next(line for line in out.splitlines() if "key SHA-256" in line).split()[-1]


def test_fresh_provision_writes_a_valid_identity(site, capsys):
    assert provision(site, "--operator-key", str(site["bob"]), "--position", "57.1", "11.8",
                     "20", "--mast-heading", "135") == 0
    out = capsys.readouterr().out
    config = load_installed_config(etc(site) / "edgenode.toml")
    assert (config.node.site, config.node.id, config.node.hardware) == ("north", "mast-07", VARIANT)
    assert config.node.mast_heading_deg == 135.0 and config.node.latitude_deg == 57.1
    assert config.broker.url == "mqtts://broker.example.net:8883"
    assert config.broker.key_file == etc(site) / "node.key"
    assert 'key_file = "/etc/edgenode/node.key"' in (etc(site) / "edgenode.toml").read_text()
    assert config.effector.enabled is False          # the template's safe default survives
    # The template's comments are kept for the technician.
    assert "dead-man" in (etc(site) / "edgenode.toml").read_text()
    modes = {name: (etc(site) / name).stat().st_mode & 0o777
             for name in ("edgenode.toml", "node.key", "node.csr", "ca.pem")}
    assert modes == {"edgenode.toml": 0o640, "node.key": 0o600, "node.csr": 0o644,
                     "ca.pem": 0o644}
    assert etc(site).stat().st_mode & 0o777 == 0o750
    key = serialization.load_pem_private_key((etc(site) / "node.key").read_bytes(), None)
    csr = x509.load_pem_x509_csr((etc(site) / "node.csr").read_bytes())
    assert csr.is_signature_valid and csr.public_key() == key.public_key()
    assert csr.subject.rfc4514_string().startswith("CN=node-north-mast-07")
    assert fingerprint_line(out).count(":") == 31
    # The daemon finds both operators where the config says (keys_dir, read under the root).
    assert config.effector.keys_dir == etc(site) / "operators"
    ring = load_config_keys(config.effector)
    assert sorted(ring.keys) == ["alice", "bob"]
    assert "CHECK" not in out                          # position and heading were given


def test_template_values_left_are_flagged(site, capsys):
    assert provision(site) == 0
    assert "node.latitude_deg, node.longitude_deg, node.altitude_m, node.mast_heading_deg" \
        in capsys.readouterr().out


def test_repeat_without_force_is_refused_and_changes_nothing(site, capsys):
    assert provision(site) == 0
    before = tree_hash(site["root"])
    capsys.readouterr()
    assert provision(site, node="mast-08") == 1
    err = capsys.readouterr().err
    assert "already has an identity: site north node mast-07" in err and "--force" in err
    assert tree_hash(site["root"]) == before


def test_force_replaces_key_and_drops_the_old_certificate(site, capsys):
    assert provision(site) == 0
    first = fingerprint_line(capsys.readouterr().out)
    site["ca"].sign(etc(site) / "node.csr", site["inputs"] / "node.crt")
    assert main(["provision", "--install-cert", str(site["inputs"] / "node.crt"),
                 "--root", str(site["root"])]) == 0
    assert main(["provision", "--site", "north", "--node", "mast-08", "--broker",
                 "mqtts://b.example:8883", "--ca", str(site["ca_file"]), "--hardware", VARIANT,
                 "--root", str(site["root"]), "--force"]) == 0
    second = fingerprint_line(capsys.readouterr().out)
    assert first != second
    assert load_installed_config(etc(site) / "edgenode.toml").node.id == "mast-08"
    assert not (etc(site) / "node.crt").exists()       # it was for the old key
    assert listing(etc(site) / "operators") == []       # the new identity named no operator


@pytest.mark.parametrize("broker", ["http://broker:8883", "mqtt://broker:1883",
                                    "mqtts://:8883", "mqtts://broker:99999",
                                    "mqtts://broker:8883/topic", "broker:8883"])
def test_bad_broker_url_is_refused(site, capsys, broker):
    assert provision(site, broker=broker) == 1
    err = capsys.readouterr().err
    assert f"--broker {broker!r}: not a broker URL" in err and "nothing was changed" in err
    assert not site["root"].exists()


def test_unreadable_ca_is_refused(site, capsys):
    missing = site["inputs"] / "nope.pem"
    assert provision(site, ca=str(missing)) == 1
    assert f"--ca {missing}: cannot read: No such file or directory" in capsys.readouterr().err
    assert provision(site, ca=str(site["inputs"])) == 1        # a directory
    assert "cannot read: Is a directory" in capsys.readouterr().err
    assert provision(site, ca=str(site["alice"])) == 1          # readable, not a certificate
    assert "not a PEM certificate" in capsys.readouterr().err
    assert not site["root"].exists()


def test_unknown_hardware_variant_is_refused(site, capsys):
    assert provision(site, hardware="pi9-unknown") == 1
    err = capsys.readouterr().err
    assert "--hardware 'pi9-unknown': no such hardware variant" in err
    assert VARIANT in err and "pi4-ops243-respeaker4" in err   # what there is
    assert not site["root"].exists()


def test_a_private_operator_key_is_refused(site, capsys):
    assert provision(site, "--operator-key", str(site["inputs"] / "bob.key")) == 1
    assert "this is a PRIVATE key" in capsys.readouterr().err
    assert not site["root"].exists()


def test_a_template_that_gives_an_invalid_config_writes_nothing(site, tmp_path, capsys):
    templates = tmp_path / "templates"
    templates.mkdir()
    text = (Path(__file__).resolve().parents[2] / "hardware/configs" / f"{VARIANT}.toml"
            ).read_text().replace("max_on_s = 60", "max_on_s = 0")
    (templates / "broken.toml").write_text(text)
    assert provision(site, "--templates", str(templates), hardware="broken") == 1
    err = capsys.readouterr().err
    assert "not valid: relay.max_on_s" in err
    assert not site["root"].exists()        # not even the directories it would have made


def test_certificate_is_checked_then_installed(site, capsys):
    assert provision(site) == 0
    cert = site["ca"].sign(etc(site) / "node.csr", site["inputs"] / "node.crt", days=30)
    assert main(["provision", "--install-cert", str(cert), "--root", str(site["root"])]) == 0
    out = capsys.readouterr().out
    assert "CN=node-north-mast-07" in out and "valid until" in out
    assert (etc(site) / "node.crt").read_bytes() == cert.read_bytes()
    assert (etc(site) / "node.crt").stat().st_mode & 0o777 == 0o644


def test_certificate_for_another_key_is_refused(site, capsys, tmp_path):
    assert provision(site) == 0
    other = {**site, "root": tmp_path / "other-node"}
    assert provision(other) == 0
    wrong = site["ca"].sign(other["root"] / "etc/edgenode/node.csr", site["inputs"] / "w.crt")
    before = tree_hash(site["root"])
    capsys.readouterr()
    assert main(["provision", "--install-cert", str(wrong), "--root", str(site["root"])]) == 1
    err = capsys.readouterr().err
    assert "the certificate is for another key" in err and "node.csr" in err
    assert tree_hash(site["root"]) == before


def test_certificate_from_another_ca_is_refused(site, capsys):
    assert provision(site) == 0
    stranger = ControlRoomCA("someone else's CA")
    cert = stranger.sign(etc(site) / "node.csr", site["inputs"] / "node.crt")
    assert main(["provision", "--install-cert", str(cert), "--root", str(site["root"])]) == 1
    assert "does not chain to the CA" in capsys.readouterr().err
    assert not (etc(site) / "node.crt").exists()


def test_expired_certificate_is_refused(site, capsys):
    assert provision(site) == 0
    cert = site["ca"].sign(etc(site) / "node.csr", site["inputs"] / "node.crt", days=-0.5)
    assert main(["provision", "--install-cert", str(cert), "--root", str(site["root"])]) == 1
    assert ": expired on" in capsys.readouterr().err
    assert not (etc(site) / "node.crt").exists()


# -- first boot -----------------------------------------------------------------------------
def firstboot_file(site: dict, boot: Path, changes: dict[str, str | None] | None = None) -> Path:
    alice = tomllib.loads(site["alice"].read_text())["effector"]["keys"][0]
    fields = {"site": '"north"', "node": '"mast-09"',
              "broker": '"mqtts://broker.example.net:8883"', "hardware": f'"{VARIANT}"',
              "mast_heading_deg": "200.0",
              "ca_pem": '"""\n' + site["ca_file"].read_text() + '"""'}
    fields.update(changes or {})
    text = "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)
    text += (f'\n[[operator_keys]]\nid = "{alice["id"]}"\nrole = "{alice["role"]}"\n'
             f'public_key = "{alice["public_key"]}"\n')
    boot.mkdir(exist_ok=True)
    path = boot / "edgenode-provision.toml"
    path.write_text(text)
    return path


def test_first_boot_file_provisions_and_is_removed(site, tmp_path, capsys):
    path = firstboot_file(site, tmp_path / "boot")
    assert main(["provision", "--from-file", str(path), "--remove-after",
                 "--root", str(site["root"])]) == 0
    config = load_installed_config(etc(site) / "edgenode.toml")
    assert (config.node.id, config.node.mast_heading_deg) == ("mast-09", 200.0)
    assert (etc(site) / "operators/alice.pub").exists()
    assert not path.exists()                              # gone from the boot partition
    done = (tmp_path / "boot/edgenode-provision.done").read_text()
    assert "key SHA-256" in done and "BEGIN CERTIFICATE REQUEST" in done
    assert fingerprint_line(capsys.readouterr().out) in done


@pytest.mark.parametrize(("changes", "message"), [
    ({"broker": '"mqtt://broker:1883"'}, "broker 'mqtt://broker:1883': not a broker URL"),
    ({"hardware": '"pi3-nothing"'}, "hardware 'pi3-nothing': no such hardware variant"),
    ({"node": None}, "node: missing (required)"),
    ({"sitee": '"x"'}, "sitee: unknown key (check the spelling)"),
    ({"ca_pem": '"not a certificate"'}, "ca_pem (pasted): not a PEM certificate"),
    ({"site": '"North Site"'}, "site 'North Site': use lower-case letters"),
    ({"node": '"mast-09'}, "not valid TOML"),
], ids=["broker", "hardware", "missing-node", "misspelt-key", "bad-ca", "bad-site", "toml"])
def test_first_boot_file_with_a_mistake_leaves_the_node_unprovisioned(site, tmp_path, capsys,
                                                                     changes, message):
    path = firstboot_file(site, tmp_path / "boot", changes)
    before = path.read_bytes()
    assert main(["provision", "--from-file", str(path), "--remove-after",
                 "--root", str(site["root"])]) == 1
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert not site["root"].exists()                        # nothing half-written
    assert path.read_bytes() == before                      # kept for correction
    failed = (tmp_path / "boot/edgenode-provision.failed").read_text()
    assert "NOT provisioned" in failed and message in failed
    assert not (tmp_path / "boot/edgenode-provision.done").exists()


def test_staging_files_never_survive_a_refusal(site, capsys):
    assert provision(site) == 0
    assert provision(site, "--force", hardware="nope") == 1
    assert not [p for p in etc(site).rglob("*") if "provision-tmp" in p.name]
    assert os.listdir(etc(site))
    assert load_installed_config(etc(site) / "edgenode.toml").node.id == "mast-07"


# -- status ---------------------------------------------------------------------------------
def test_status_shows_identity_key_and_certificate_expiry(site, capsys):
    assert main(["provision", "--status", "--root", str(site["root"])]) == 1
    assert "not provisioned" in capsys.readouterr().err
    assert provision(site) == 0
    fp = fingerprint_line(capsys.readouterr().out)
    assert main(["provision", "--status", "--root", str(site["root"])]) == 0
    out = capsys.readouterr().out
    assert "site north node mast-07" in out and fp in out
    assert "certificate none" in out and "operators   alice" in out
    cert = site["ca"].sign(etc(site) / "node.csr", site["inputs"] / "node.crt", days=20)
    assert main(["provision", "--install-cert", str(cert), "--root", str(site["root"])]) == 0
    capsys.readouterr()
    assert main(["provision", "--status", "--root", str(site["root"])]) == 0
    assert "(20 days left, expiring)" in capsys.readouterr().out


def test_cert_expiry_states(site):
    assert provision(site) == 0
    cert = site["ca"].sign(etc(site) / "node.csr", site["inputs"] / "node.crt", days=90)
    expiry = cert_expiry(cert)
    assert expiry is not None and expiry.state == "ok" and 89 < expiry.days_left < 90.1
    later = expiry.not_after + dt.timedelta(seconds=1)
    assert cert_expiry(cert, now=later).state == "expired"
    assert cert_expiry(site["inputs"] / "missing.crt") is None

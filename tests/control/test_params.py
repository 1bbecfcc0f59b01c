"""Each action's params (edgenode/control/admission.check_params): what is refused names the
field and the limit, and the limits themselves are taken."""

from __future__ import annotations

from typing import Any

import pytest

from edgenode.config import KEYS_VERSION_MAX, Config
from edgenode.control.admission import check_params
from tests.control.conftest import OPERATORS, key_entry, make_config

TRACK = "01JQ7Z8M4V6WJ2Q1S5T3R9XK0B"
CONFIG = make_config(max_arm_s=600, max_engage_s=50)
REASON_8 = "medevac!"  # the shortest reason taken

REFUSED = [
    ("arm", {"ttl_s": 5, "x": 1}, "arm takes exactly {ttl_s}"),
    ("arm", {"ttl_s": "5"}, "'ttl_s' must be a number"),
    ("arm", {"ttl_s": 0}, "ttl_s 0.0 outside (0, effector.max_arm_s 600.0]"),
    ("arm", {"ttl_s": 600.5}, "ttl_s 600.5 outside (0, effector.max_arm_s 600.0]"),
    ("engage", {"bearing_deg": 1}, "engage takes duration_s and exactly one of track, "
     "bearing_deg"),
    ("engage", {"duration_s": 5, "bearing_deg": 1, "track": TRACK},
     "engage takes duration_s and exactly one of track, bearing_deg"),
    ("engage", {"duration_s": 0, "bearing_deg": 1},
     "duration_s 0.0 outside (0, effector.max_engage_s 50.0]"),
    ("engage", {"duration_s": 51, "bearing_deg": 1},
     "duration_s 51.0 outside (0, effector.max_engage_s 50.0]"),
    ("engage", {"duration_s": 5, "track": "T-1"}, "track must be a track id (ULID)"),
    ("engage", {"duration_s": 5, "bearing_deg": 360}, "bearing_deg 360.0 outside [0, 360)"),
    ("engage", {"duration_s": 5, "bearing_deg": -0.5}, "bearing_deg -0.5 outside [0, 360)"),
    ("engage", {"duration_s": 5, "bearing_deg": 1, "airspace_override": " 7 chars "},
     "airspace_override must be the reason, 8 to 200 characters"),
    ("engage", {"duration_s": 5, "bearing_deg": 1, "airspace_override": "r" * 201},
     "airspace_override must be the reason, 8 to 200 characters"),
    ("engage", {"duration_s": 5, "bearing_deg": 1, "identity_override": "7 chars"},
     "identity_override must be the reason, 8 to 200 characters"),
    ("engage", {"duration_s": 5, "bearing_deg": 1, "identity_override": "r" * 201},
     "identity_override must be the reason, 8 to 200 characters"),
    ("engage", {"duration_s": 5, "bearing_deg": 1, "identity_override": 12345678},
     "identity_override must be the reason, 8 to 200 characters"),
    ("keys-update", {"version": 2}, "keys-update takes version, keys and optionally revoked"),
    ("keys-update", {"version": 2, "keys": [], "revoked": [], "x": 1},
     "keys-update takes version, keys and optionally revoked"),
    ("keys-update", {"version": 0, "keys": [key_entry(OPERATORS["root"])]},
     f"version must be an integer in [1, {KEYS_VERSION_MAX}]"),
    ("keys-update", {"version": True, "keys": [key_entry(OPERATORS["root"])]},
     f"version must be an integer in [1, {KEYS_VERSION_MAX}]"),
    ("keys-update", {"version": 2, "keys": [key_entry(OPERATORS["root"])], "revoked": "bob"},
     "revoked must be a list of key ids"),
    ("keys-update", {"version": 2, "keys": [key_entry(OPERATORS["root"])], "revoked": [1]},
     "revoked must be a list of key ids"),
    ("keys-update", {"version": 2, "keys": [{**key_entry(OPERATORS["root"]), "demo": True}]},
     "keys holds a demo key: demo keys work only with the simulated relay"),
    ("safe", {f"p{i}": i for i in range(6)},
     "safe takes no params, got ['p0', 'p1', 'p2', 'p3', 'p4']"),
]


@pytest.mark.parametrize(("action", "params", "problem"), REFUSED,
                         ids=[str(i) for i in range(len(REFUSED))])
def test_params_that_do_not_fit_are_refused_naming_the_field(action: str,
                                                            params: dict[str, Any],
                                                            problem: str) -> None:
    assert check_params(action, params, CONFIG) == problem


TAKEN = [
    ("arm", {"ttl_s": 600}),
    ("arm", {"ttl_s": 0.001}),
    ("engage", {"duration_s": 50, "bearing_deg": 0}),
    ("engage", {"duration_s": 0.1, "bearing_deg": 359.99}),
    ("engage", {"duration_s": 5, "track": TRACK}),
    ("engage", {"duration_s": 5, "bearing_deg": 1, "airspace_override": REASON_8,
                "identity_override": "r" * 200}),
    ("engage", {"duration_s": 5, "bearing_deg": 1, "airspace_override": "r" * 200,
                "identity_override": REASON_8}),
    ("keys-update", {"version": KEYS_VERSION_MAX, "keys": [key_entry(OPERATORS["root"])],
                     "revoked": ["bob"]}),
    ("safe", {}),
]


@pytest.mark.parametrize(("action", "params"), TAKEN, ids=[str(i) for i in range(len(TAKEN))])
def test_params_at_their_limits_are_taken(action: str, params: dict[str, Any]) -> None:
    assert check_params(action, params, CONFIG) is None


def test_demo_keys_may_be_installed_on_the_simulated_relay_only() -> None:
    demo = {"version": 2, "keys": [{**key_entry(OPERATORS["root"]), "demo": True}]}
    sim = Config.model_validate(CONFIG.model_dump() | {
        "relay": CONFIG.relay.model_dump() | {"backend": "sim"}})
    assert check_params("keys-update", demo, sim) is None
    assert check_params("keys-update", demo, CONFIG) is not None

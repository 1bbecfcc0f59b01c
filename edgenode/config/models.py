"""Typed config sections. Units are in the field names; every number has bounds.

An unknown key is an error (`extra="forbid"`): a misspelt option must never be ignored on a
unit that switches a jammer.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

# Site and node ids become MQTT topic levels and file names: keep them plain.
Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
GpioLine = Annotated[int, Field(ge=0, le=53)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSection(Section):
    site: Identifier
    id: Identifier
    hardware: str = Field("custom", max_length=64)
    latitude_deg: float = Field(ge=-90, le=90)
    longitude_deg: float = Field(ge=-180, le=180)
    altitude_m: float = Field(ge=-500, le=9000)
    # Config is authoritative for the heading; the compass only checks it.
    mast_heading_deg: float = Field(ge=0, lt=360)


class StorageSection(Section):
    state_dir: Path | None = None
    outbox_max_mb: float = Field(64, ge=1, le=4096)
    outbox_max_age_h: float = Field(72, ge=0.1, le=24 * 365)
    audit_segment_kb: int = Field(1024, ge=16, le=65536)
    audit_max_segments: int = Field(64, ge=2, le=10000)


# With the effector enabled, a silent broker must drop the relay within link_loss_grace_s plus
# this (docs/mqtt.md, "Link loss").
MAX_SILENCE_WITH_EFFECTOR_S = 1.0


class BrokerSection(Section):
    url: str = Field(pattern=r"^mqtts?://[^/:\s]+(:\d{1,5})?/?$")
    mqtt_version: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(10, ge=2, le=600)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = Field(None, max_length=256)
    # A file (or a systemd credential name, looked up in $CREDENTIALS_DIRECTORY) holding the
    # password; never the password itself in the config.
    password_file: Path | None = None
    password_credential: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    replay_rate_per_s: float = Field(200, ge=1, le=10000)
    health_period_s: float = Field(10, ge=1, le=3600)
    # Reconnect backoff: doubles from reconnect_min_s up to reconnect_max_s, both jittered.
    reconnect_min_s: float = Field(1, ge=0.1, le=60)
    reconnect_max_s: float = Field(30, ge=1, le=600)
    # QoS 1 publishes on the wire at once: at most the broker's Receive Maximum
    # (Mosquitto 20, EMQX 32, HiveMQ 10).
    max_inflight: int = Field(20, ge=1, le=65535)
    # The node pings itself through the broker; no echo for this long and the link counts as
    # lost (edgenode/link/watch.py): a frozen broker keeps the TCP session open for minutes.
    silence_s: float = Field(0.8, ge=0.2, le=60)

    @field_validator("url")
    @classmethod
    def _port_in_range(cls, url: str) -> str:
        port = url.rstrip("/").rpartition(":")[2]
        if port.isdigit() and not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port} outside 1..65535")
        return url

    @model_validator(mode="after")
    def _client_cert_pair(self) -> BrokerSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        return self


class RadarSection(Section):
    model: Literal["ti-mmwave", "ops243"]
    data_port: str = Field(min_length=1)
    cli_port: str | None = None
    data_baud: int = Field(921600, ge=1200, le=4_000_000)
    cli_baud: int = Field(115200, ge=1200, le=4_000_000)
    # TI chirp configuration uploaded over the CLI port at start (path, relative to the config).
    chirp_config: Path | None = None
    # Where the radar's boresight points, clockwise from the mast heading.
    boresight_azimuth_deg: float = Field(0, ge=-180, le=180)
    mount_height_m: float = Field(3.0, ge=0, le=200)
    frame_timeout_s: float = Field(2.0, ge=0.1, le=60)
    # The radar's frame period: frames are stamped from their frame numbers on it (default:
    # frameCfg's periodicity in chirp_config; with neither, frames are stamped on arrival).
    frame_period_ms: float | None = Field(None, ge=1, le=10_000)


class AcousticSection(Section):
    backend: Literal["alsa", "wav", "fake", "sim"]
    # ALSA device name, WAV path, fake generator name or sim socket, by backend.
    device: str = Field(min_length=1)
    # A shipped geometry name (uma16, uma8, respeaker4) or a TOML file of positions.
    geometry: str = Field(min_length=1)
    channels: int = Field(ge=1, le=64)
    sample_rate_hz: int = Field(48000, ge=16000, le=96000)
    block_frames: int = Field(4096, ge=256, le=65536)
    # Capture channel feeding each geometry microphone, in geometry order.
    channel_map: list[Annotated[int, Field(ge=0, le=63)]] | None = None
    stall_timeout_s: float = Field(2.0, ge=0.1, le=60)
    # Look for a second, distant drone beside one heard nearby (docs/detection.md): off by
    # default: with it the acoustic chain is at the speed bench's limit (0.7-0.8x its FFT
    # yardstick more).
    second_drone: bool = False


class RelaySection(Section):
    """The jammer relay board (hardware/relay-board.md)."""

    backend: Literal["gpiod", "rpigpio", "fake", "sim"]
    # gpiod opens the header chip by label: its number changed between Pi 5 kernels.
    chip_label: str = Field("pinctrl-rp1", min_length=1)
    device: str | None = None  # sim backend: the twin's socket
    # fake backend only (tests, demos without hardware): where its key switch stands.
    fake_key_switch: Literal["off", "test", "operate"] = "off"
    drive_line: GpioLine
    heartbeat_line: GpioLine
    aux_line: GpioLine
    key_test_line: GpioLine
    key_operate_line: GpioLine
    heartbeat_period_ms: int = Field(20, ge=2, le=500)
    # The board's monostable dropout; the heartbeat must toggle well inside it.
    board_dropout_ms: int = Field(200, ge=20, le=5000)
    # Dead-man rule: the longest the relay may stay on, whatever any command says. Mandatory.
    max_on_s: float = Field(ge=1, le=600)

    @model_validator(mode="after")
    def _lines_distinct_and_heartbeat_fast(self) -> RelaySection:
        lines = [self.drive_line, self.heartbeat_line, self.aux_line, self.key_test_line,
                 self.key_operate_line]
        if len(set(lines)) != len(lines):
            raise ValueError(f"relay lines must be five different GPIO lines, got {lines}")
        if self.fake_key_switch != "off" and self.backend != "fake":
            raise ValueError("fake_key_switch is for the fake backend only: a real key switch "
                             "is read from its lines")
        if self.heartbeat_period_ms * 3 > self.board_dropout_ms:
            raise ValueError(
                f"heartbeat_period_ms {self.heartbeat_period_ms} must be at most a third of "
                f"board_dropout_ms {self.board_dropout_ms}, or the board drops out while healthy"
            )
        return self


# The highest key-set version, in the config and in a keys-update alike: the config can
# always name a version a stored key set does not exceed (the installer's way back in).
KEYS_VERSION_MAX = 2**31

Role = Literal["observer", "technician", "operator", "admin"]


class OperatorKey(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role
    # Raw 32-byte Ed25519 public key, base64.
    public_key: str = Field(pattern=r"^[A-Za-z0-9+/]{43}=$")
    # Made by `edgenode run --sim`: never valid with a real relay.
    demo: StrictBool = False


class EffectorSection(Section):
    # Jamming is lawful only for authorised (mostly government) users: off unless enabled here.
    # Strict: a switch that decides whether a jammer may radiate is true or false, never
    # "yes" or 1.
    enabled: StrictBool = False
    two_person: StrictBool = False
    max_engage_s: float = Field(30, ge=1, le=600)
    max_arm_s: float = Field(300, ge=5, le=3600)
    duty_window_s: float = Field(600, ge=10, le=86400)
    duty_max_on_s: float = Field(120, ge=1, le=86400)
    # The relay goes off when the broker has been gone this long (ARMED drops to SAFE too).
    link_loss_grace_s: float = Field(5, ge=0, le=10)
    command_max_lifetime_s: float = Field(30, ge=1, le=300)
    clock_skew_s: float = Field(2, ge=0, le=60)
    max_command_bytes: int = Field(8192, ge=512, le=65536)
    # How long the relay's aux contact may lag the drive (operate/release time plus bounce)
    # before a disagreement is a FAULT (a contact still closed after the drive dropped is
    # `stuck_on`).
    aux_settle_ms: int = Field(100, ge=5, le=2000)
    keys_dir: Path | None = None
    keys: list[OperatorKey] = Field(default_factory=list)
    # Version of the key set above; a keys-update over MQTT with a higher version replaces it
    # (kept in the state directory) until this number is raised past it.
    keys_version: int = Field(0, ge=0, le=KEYS_VERSION_MAX)

    @field_validator("keys_dir")
    @classmethod
    def _keys_dir_exists(cls, path: Path | None) -> Path | None:
        # A missing directory would silently mean "no keys from there".
        if path is not None and not path.is_dir():
            raise ValueError(f"keys_dir {path} is not a directory (missing or not readable)")
        return path

    @model_validator(mode="after")
    def _key_ids_unique(self) -> EffectorSection:
        ids = [k.id for k in self.keys]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"key id(s) {twice} listed more than once in [[effector.keys]] "
                             "(one would silently replace the other)")
        return self


I2CKind = Literal["ina219", "ina226", "qmc5883l", "lis3mdl", "tmp102", "bme280", "hat-eeprom"]


class I2CDevice(Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    kind: I2CKind
    bus: int = Field(1, ge=0, le=32)
    address: int = Field(ge=0x03, le=0x77)
    shunt_ohm: float | None = Field(None, gt=0, le=10)

    @model_validator(mode="after")
    def _power_monitor_needs_shunt(self) -> I2CDevice:
        if self.kind in ("ina219", "ina226") and self.shunt_ohm is None:
            raise ValueError(f"{self.kind} '{self.name}' needs shunt_ohm (the shunt resistor)")
        return self


class SensorsSection(Section):
    # CPU temperature, throttling and clock sync: the host's own, or the twin's.
    system_backend: Literal["host", "fake", "sim"] = "host"
    system_device: str | None = None  # sim backend: the twin's socket
    i2c_backend: Literal["smbus2", "fake", "sim"] = "smbus2"
    i2c_device: str | None = None  # sim backend: the twin's socket
    i2c: list[I2CDevice] = Field(default_factory=list)
    # The compass checks node.mast_heading_deg: magnetic + declination = true.
    magnetic_declination_deg: float = Field(0.0, ge=-30, le=30)
    compass_tolerance_deg: float = Field(10.0, ge=1, le=90)

    @model_validator(mode="after")
    def _unique_names(self) -> SensorsSection:
        names = [d.name for d in self.i2c]
        if len(set(names)) != len(names):
            raise ValueError(f"i2c device names must be unique, got {names}")
        return self


class CotSection(Section):
    """Cursor-on-Target output (edgenode.interop.cot): tracks and the node on TAK maps."""

    # tcp://host:port (TAK server), tls://host:port (with a client certificate),
    # udp://239.2.3.1:6969 (multicast: a LAN without a server) or udp://host:port (unicast)
    url: str = Field(pattern=r"^(tcp|tls|udp)://[^/:\s]+:\d{1,5}$")
    protocol: Literal["xml", "protobuf"] = "xml"  # protobuf: TAK Protocol version 1
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    max_rate_hz: float = Field(1.0, gt=0, le=10)  # events per second per track
    stale_s: float = Field(15, ge=2, le=600)  # a track leaves the map this long after its last
    marker_period_s: float = Field(10, ge=1, le=600)  # the node's own marker is refreshed
    multicast_ttl: int = Field(1, ge=1, le=32)
    multicast_interface: str | None = Field(None, pattern=r"^\d{1,3}(\.\d{1,3}){3}$")
    queue_events: int = Field(1000, ge=10, le=100000)
    reconnect_min_s: float = Field(1, ge=0.1, le=60)
    reconnect_max_s: float = Field(30, ge=1, le=600)

    @model_validator(mode="after")
    def _destination(self) -> CotSection:
        port = int(self.url.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            raise ValueError(f"url {self.url!r}: port {port} is not in 1..65535")
        if self.url.startswith("tls://") and (self.cert_file is None or self.key_file is None):
            raise ValueError("url tls://...: a TAK server needs the node's client certificate: "
                             "set cert_file and key_file")
        return self


class SapientSection(Section):
    """A SAPIENT (BSI Flex 335 v2.0) peer: a fusion node or middleware (docs/sapient.md)."""

    # Host name or address of the middleware; `edgenode run --sim --sapient HOST:PORT` sets it.
    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:-]+$")
    port: int = Field(ge=1, le=65535)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Declared in the Registration; a StatusReport goes out this often.
    status_interval_s: float = Field(5, ge=1, le=3600)
    # Reconnect backoff: doubles from reconnect_min_s up to reconnect_max_s, jittered.
    reconnect_min_s: float = Field(1, ge=0.1, le=60)
    reconnect_max_s: float = Field(30, ge=1, le=600)
    registration_timeout_s: float = Field(10, ge=1, le=300)
    # A frame announcing more than this is a broken stream: the connection is reset.
    max_message_bytes: int = Field(1_048_576, ge=4096, le=64 * 1_048_576)
    # Reports waiting for the socket; beyond this the newest are dropped and counted.
    queue_max: int = Field(256, ge=8, le=65536)
    # Effector tasks (engage, disengage, safe) from the peer: false refuses them all ("engage
    # requires a signed operator command"); true takes them through the effector's admission
    # like a signed command, and needs mutual TLS with a pinned CA and [effector] enabled
    # (docs/sapient.md, "Effector tasks").
    effector_tasks: StrictBool = False

    @model_validator(mode="after")
    def _effector_tasks_need_mutual_tls(self) -> SapientSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        if self.effector_tasks:
            # Only an authenticated peer may task the jammer: the node must know whom it
            # talks to (pinned CA) and the peer must know the node (client certificate).
            missing = [name for name, value in (("tls", self.tls or None),
                                                ("ca_file", self.ca_file),
                                                ("cert_file", self.cert_file),
                                                ("key_file", self.key_file)) if value is None]
            if missing:
                raise ValueError(
                    "effector_tasks = true needs mutual TLS with a pinned CA: "
                    + ", ".join(f"sapient.{m}" for m in missing)
                    + (" is" if len(missing) == 1 else " are") + " not set (tls = true, "
                    "ca_file = the CA that signed the middleware's certificate, cert_file and "
                    "key_file = this node's client certificate and key); see docs/sapient.md")
        return self


class StatusPageSection(Section):
    """The technician's read-only status page (edgenode.web), off by default."""

    enabled: bool = False
    # Addresses to listen on: name the service port's address, not every interface.
    bind: list[Annotated[str, Field(pattern=r"^[0-9a-fA-F.:]{2,45}$")]] = Field(
        default_factory=lambda: ["127.0.0.1"], min_length=1, max_length=8)
    port: int = Field(8080, ge=1, le=65535)
    # `edgenode status-page --hash-password` prints it; without it no self-test can be started
    password_hash: str | None = Field(
        None, pattern=r"^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
    session_minutes: float = Field(30, ge=1, le=24 * 60)


AdsbUrl = Annotated[str, Field(pattern=r"^(beast|sbs)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$")]
ZoneName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")]


class NoJamSector(Section):
    """Bearings the jammer must never point at (a road, a village), as true bearings clockwise
    from north, from `from_deg` clockwise to `to_deg` (it may wrap through north)."""

    name: ZoneName
    from_deg: float = Field(ge=0, lt=360)
    to_deg: float = Field(ge=0, lt=360)

    @model_validator(mode="after")
    def _not_empty(self) -> NoJamSector:
        if self.from_deg == self.to_deg:
            raise ValueError(f"sector '{self.name}': from_deg equals to_deg ({self.from_deg}); "
                             "a sector must span some bearings (0 to 359.9 blocks all)")
        return self


class NoJamCircle(Section):
    """A place the jammer must not reach (an airport, a helipad): its centre and radius."""

    name: ZoneName
    latitude_deg: float = Field(ge=-90, le=90)
    longitude_deg: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0, le=50_000)


class AirspaceSection(Section):
    """Manned aircraft (ADS-B) and no-jam geometry: both block an engagement."""

    # The local receiver's Beast (port 30005) or SBS (port 30003) output.
    adsb_source: AdsbUrl | None = None
    # An aircraft inside this cylinder around the site blocks (and ends) an engagement.
    protection_radius_m: float = Field(5000, ge=500, le=50_000)
    protection_height_m: float = Field(1500, ge=100, le=15_000)
    # The picture keeps aircraft out to this range (shown in health), at most max_aircraft.
    picture_radius_m: float = Field(30_000, ge=1000, le=500_000)
    max_aircraft: int = Field(300, ge=10, le=5000)
    # An aircraft (and its position) not heard for this long is forgotten.
    stale_s: float = Field(15, ge=1, le=120)
    # The feed counts as lost when disconnected, or silent this long (dump1090 and readsb
    # send a heartbeat every 60 s on a quiet sky).
    feed_silence_s: float = Field(75, ge=1, le=600)
    # Fail safe: with the feed lost, refuse engagements (and end a running one).
    fail_safe: bool = True
    # How far the jammer reaches and how wide its beam is: a circle within reach whose
    # bearings meet the beam blocks the engage; sectors are widened by half the beam.
    jam_range_m: float = Field(3000, ge=10, le=100_000)
    beam_width_deg: float = Field(0, ge=0, le=360)
    sectors: list[NoJamSector] = Field(default_factory=list)
    circles: list[NoJamCircle] = Field(default_factory=list)
    # Never engage a target higher than this above the site (a jammer pointed up reaches
    # aviation); applies when the target's height is known (a track).
    ceiling_m: float | None = Field(None, gt=0, le=15_000)

    @model_validator(mode="after")
    def _picture_covers_protection(self) -> AirspaceSection:
        if self.picture_radius_m < self.protection_radius_m:
            raise ValueError(f"picture_radius_m {self.picture_radius_m} is less than "
                             f"protection_radius_m {self.protection_radius_m}: aircraft inside "
                             "the protection volume would not be in the picture")
        names = [z.name for z in [*self.sectors, *self.circles]]
        if len(set(names)) != len(names):
            raise ValueError(f"no-jam sector and circle names must be unique, got {names}")
        return self


RemoteIdBackend = Literal["wifi-monitor", "bluez-hci", "socket", "capture", "fake"]


class RemoteIdReceiverConfig(Section):
    """One Remote ID receiver (hal.remoteid.open_receiver): a monitor-mode Wi-Fi interface
    ("wlan1"), an HCI adapter ("hci0"), a UNIX datagram socket path (the twin, or a capture
    helper; `linktype` says what its datagrams hold: 127 radiotap+802.11, 251 BLE LL), or a
    capture file (replay)."""

    backend: RemoteIdBackend
    device: str = Field(min_length=1, max_length=256)
    linktype: int | None = Field(None, ge=0, le=65535)  # socket only

    @model_validator(mode="after")
    def _linktype_for_socket(self) -> RemoteIdReceiverConfig:
        if self.linktype is not None and self.backend != "socket":
            raise ValueError(f"linktype applies to backend 'socket', not '{self.backend}'")
        return self


class RemoteIdHonesty(Section):
    """The thresholds of the honesty verdicts (edgenode.identify.remoteid_honesty)."""

    max_speed_mps: float = Field(70.0, gt=0, le=500)
    two_places_m: float = Field(300.0, gt=0, le=100_000)
    two_places_window_s: float = Field(2.0, gt=0, le=60)
    bearing_tolerance_deg: float = Field(15.0, gt=0, le=180)
    range_tolerance_m: float = Field(150.0, gt=0, le=10_000)
    bad_window_s: float = Field(30.0, gt=0, le=3600)
    min_reports: int = Field(2, ge=1, le=100)


class RemoteIdAllow(Section):
    """A UAS ID that may fly here: engaging its track while its broadcast is trusted needs an
    admin override. `expires` is an ISO 8601 UTC time ("2027-06-30T18:00:00Z")."""

    uas_id: str = Field(min_length=1, max_length=20, pattern=r"^[\x20-\x7e]+$")
    expires: datetime
    approved_by: str = Field(min_length=1, max_length=64)
    note: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _aware(self) -> RemoteIdAllow:
        if self.expires.tzinfo is None:
            raise ValueError(f"allow entry {self.uas_id}: expires {self.expires} needs a time "
                             "zone (end it with Z for UTC)")
        return self


class RemoteIdSection(Section):
    """Remote ID (ASTM F3411) receivers, the identity store, the honesty verdicts and the
    allow-list (docs/remoteid.md)."""

    receivers: list[RemoteIdReceiverConfig] = Field(default_factory=list, max_length=8)
    # An identity not heard for this long is forgotten.
    stale_after_s: float = Field(10.0, ge=1, le=300)
    # The identity store's bound: a flood of fake IDs evicts the oldest and stale first.
    max_identities: int = Field(2000, ge=10, le=100_000)
    # Frames waiting between the receivers and the detection stage (the oldest go first).
    queue_frames: int = Field(2048, ge=16, le=100_000)
    # Association of broadcasts to tracks: bearing gate, and range gate where a radar measured.
    gate_deg: float = Field(20.0, gt=0, le=180)
    gate_m: float = Field(300.0, gt=0, le=10_000)
    honesty: RemoteIdHonesty = RemoteIdHonesty()
    allow: list[RemoteIdAllow] = Field(default_factory=list, max_length=10_000)

    @model_validator(mode="after")
    def _unique(self) -> RemoteIdSection:
        ids = [a.uas_id for a in self.allow]
        if len(set(ids)) != len(ids):
            raise ValueError(f"allow-list UAS IDs must be unique, got {ids}")
        return self


class Config(Section):
    node: NodeSection
    storage: StorageSection = StorageSection()
    broker: BrokerSection
    relay: RelaySection
    effector: EffectorSection = EffectorSection()
    radar: RadarSection | None = None
    acoustic: AcousticSection | None = None
    sensors: SensorsSection = SensorsSection()
    cot: CotSection | None = None
    sapient: SapientSection | None = None
    status_page: StatusPageSection = StatusPageSection()
    airspace: AirspaceSection | None = None
    remoteid: RemoteIdSection | None = None

    @model_validator(mode="after")
    def _cross_section_rules(self) -> Config:
        if self.effector.max_engage_s > self.relay.max_on_s:
            raise ValueError(
                f"effector.max_engage_s {self.effector.max_engage_s} exceeds relay.max_on_s "
                f"{self.relay.max_on_s}: an engagement may never outlast the relay's dead-man limit"
            )
        if self.effector.enabled and self.broker.silence_s > MAX_SILENCE_WITH_EFFECTOR_S:
            raise ValueError(
                f"broker.silence_s {self.broker.silence_s:g} with effector.enabled: a silent "
                f"broker would keep the relay on for up to effector.link_loss_grace_s + "
                f"{self.broker.silence_s:g} s; the promise is link_loss_grace_s + 1 s, so "
                f"broker.silence_s must be at most {MAX_SILENCE_WITH_EFFECTOR_S:g}"
            )
        if self.sapient is not None and self.sapient.effector_tasks \
                and not self.effector.enabled:
            raise ValueError(
                "sapient.effector_tasks = true with effector.enabled false: there is no "
                "effector to task; set [effector] enabled = true or sapient.effector_tasks = "
                "false")
        if self.effector.enabled and self.relay.backend != "sim":
            demo = [k.id for k in self.effector.keys if k.demo]
            if demo:
                raise ValueError(
                    f"effector.enabled with demo key(s) {demo} on relay backend "
                    f"'{self.relay.backend}': demo keys work only with the simulated relay"
                )
        return self

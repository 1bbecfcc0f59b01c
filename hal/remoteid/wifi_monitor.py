"""Wi-Fi Remote ID from an interface in monitor mode: a raw AF_PACKET socket delivers every
frame the radio hears with its radiotap header; no extra library.

The interface must already be in monitor mode on the Remote ID channel (2.4 GHz channel 6 is
where beacons and NAN frames are sent), for example:
    sudo iw dev wlan1 set type monitor && sudo ip link set wlan1 up && sudo iw dev wlan1 set
    channel 6
The Pi's built-in Wi-Fi cannot do monitor mode; hardware/remoteid.md lists USB adapters that
can. Opening needs CAP_NET_RAW (the systemd drop-in in docs/remoteid.md grants it; or root).
"""

from __future__ import annotations

import socket
from pathlib import Path

from hal.remoteid import ReceiverError
from hal.remoteid.linktypes import IEEE802_11_RADIOTAP
from hal.remoteid.live import SocketReceiver

ETH_P_ALL = 0x0003
ARPHRD_IEEE80211_RADIOTAP = 803
SYS_NET = Path("/sys/class/net")


class WifiMonitorReceiver(SocketReceiver):
    """Receives on `device` (an interface name). `sock` hands in an already open datagram
    socket that delivers radiotap frames (tests, or a socket opened by a privileged helper)."""

    def __init__(self, device: str, *, sock: socket.socket | None = None,
                 sys_net: Path = SYS_NET) -> None:
        if sock is None:
            sock = _open(device, sys_net)
        super().__init__(f"wifi '{device}'", sock, IEEE802_11_RADIOTAP)


def _open(device: str, sys_net: Path) -> socket.socket:
    type_file = sys_net / device / "type"
    try:
        link_type = int(type_file.read_text().strip())
    except FileNotFoundError:
        raise ReceiverError(f"wifi interface '{device}' does not exist; see `ip link` for the "
                            "interfaces, and plug in a monitor-capable USB adapter "
                            "(hardware/remoteid.md)") from None
    except (OSError, ValueError) as exc:
        raise ReceiverError(f"wifi interface '{device}': cannot read {type_file}: {exc}") \
            from exc
    if link_type != ARPHRD_IEEE80211_RADIOTAP:
        raise ReceiverError(f"wifi interface '{device}' is not in monitor mode (link type "
                            f"{link_type}, want {ARPHRD_IEEE80211_RADIOTAP}); set it with "
                            f"`sudo iw dev {device} set type monitor` and bring it up")
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except PermissionError:
        raise ReceiverError(f"wifi interface '{device}': a raw socket needs CAP_NET_RAW "
                            "(the unit drop-in in docs/remoteid.md grants it; or run as root)") \
            from None
    try:
        sock.bind((device, ETH_P_ALL))
    except OSError as exc:
        sock.close()
        raise ReceiverError(f"wifi interface '{device}': cannot bind: {exc}; is it up?") \
            from exc
    return sock

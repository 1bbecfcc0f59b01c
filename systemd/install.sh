#!/usr/bin/env bash
# Field install on Raspberry Pi OS / Debian: the daemon under /opt/edgenode, its own user,
# config in /etc/edgenode, the unit enabled. Run from the project checkout as root
# (`sudo make install`). Safe to run again: it upgrades in place and keeps the config.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=/opt/edgenode
CONFIG=/etc/edgenode/edgenode.toml

echo "edgenode install: apt packages"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  python3 python3-venv python3-dev gcc pkg-config libsystemd-dev alsa-utils i2c-tools

echo "edgenode install: user and groups"
for group in gpio i2c dialout audio; do getent group "$group" >/dev/null || groupadd --system "$group"; done
id edgenode >/dev/null 2>&1 || useradd --system --home-dir /var/lib/edgenode --shell /usr/sbin/nologin \
  --groups dialout,gpio,i2c,audio edgenode

echo "edgenode install: software in $PREFIX"
mkdir -p "$PREFIX"
cp -r pyproject.toml README.md edgenode hal hardware "$PREFIX"/
python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip
"$PREFIX/venv/bin/pip" install -q "$PREFIX[pi]"

echo "edgenode install: config, udev rules, unit"
install -d -m 0750 -g edgenode /etc/edgenode /etc/edgenode/credentials
if [ ! -f "$CONFIG" ]; then
  install -m 0640 -g edgenode hardware/configs/pi5-iwr6843-uma16.toml "$CONFIG"
  echo "edgenode install: wrote an example $CONFIG: set [node] and [broker] for this site"
fi
[ -f hardware/99-edgenode.rules ] && install -m 0644 hardware/99-edgenode.rules /etc/udev/rules.d/
install -m 0644 systemd/edgenode.service /etc/systemd/system/edgenode.service
udevadm control --reload-rules 2>/dev/null || true
systemctl daemon-reload
systemctl enable edgenode.service

if "$PREFIX/venv/bin/edgenode" validate-config "$CONFIG"; then
  systemctl restart edgenode.service
  echo "edgenode install: started; watch it with: journalctl -fu edgenode"
else
  echo "edgenode install: fix the config above, then: sudo systemctl restart edgenode"
fi

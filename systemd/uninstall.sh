#!/usr/bin/env bash
# Remove edgenode: the unit is stopped (the daemon drives the relay OFF as it stops, and
# ExecStopPost runs relay-safe), then the software, units, udev rules and time sync drop-in go.
# Config (/etc/edgenode) and state (/var/lib/edgenode) stay unless --purge (`make uninstall
# PURGE=1`), which also removes the edgenode user. --root DIR as for install.sh.
set -euo pipefail
ROOT=${DESTDIR:-/}
PURGE=0
RUN_USER=edgenode
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --purge) PURGE=1 ;;
    --user) RUN_USER=${2:?--user needs a name}; shift ;;
    -h|--help) echo "usage: uninstall.sh [--root DIR] [--purge] [--user NAME]"; exit 0 ;;
    *) echo "uninstall.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
say() { echo "edgenode uninstall: $*"; }
[ -d "$ROOT" ] || { echo "edgenode uninstall: no directory $ROOT" >&2; exit 1; }
R=$(cd "$ROOT" && pwd -P); R=${R%/}
system() { if [ -z "$R" ]; then "$@" || true; else say "test root, not run: $*"; fi; }

system systemctl disable --now edgenode-firstboot.service edgenode.service
rm -f "$R/etc/systemd/system/edgenode.service" "$R/etc/systemd/system/edgenode-firstboot.service" \
  "$R/etc/udev/rules.d/99-edgenode.rules" "$R/etc/systemd/timesyncd.conf.d/edgenode.conf" \
  "$R/etc/chrony/conf.d/edgenode.conf" "$R/usr/local/bin/edgenode" \
  "$R/usr/local/bin/edgenode-rollback"
rm -rf "$R/opt/edgenode"
system systemctl daemon-reload
system udevadm control --reload-rules
if [ $PURGE = 1 ]; then
  rm -rf "$R/etc/edgenode" "$R/var/lib/edgenode"
  [ -z "$R" ] && id "$RUN_USER" >/dev/null 2>&1 && userdel "$RUN_USER"
  say "removed the software, config, keys, state and the $RUN_USER user"
else
  say "removed the software; kept $R/etc/edgenode and $R/var/lib/edgenode (PURGE=1 removes them)"
fi

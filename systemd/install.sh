#!/usr/bin/env bash
# Field install on Raspberry Pi OS / Debian, from a checkout (`sudo make install`) or from an
# unpacked bundle (`make bundle`; then `sudo ./systemd/install.sh --offline` inside it).
#
#   /opt/edgenode/releases/<version>/   the software, with its own venv (read-only for the daemon)
#   /opt/edgenode/current, previous     symlinks to releases/<version>
#   /etc/edgenode/                      config and keys (kept by upgrades and uninstall)
#   /var/lib/edgenode/                  state (outbox, audit log)
#   units, udev rules, time sync drop-in, /usr/local/bin/edgenode and edgenode-rollback
#
# Run it again with the same version: nothing changes. With a new version: the release goes in
# beside the old one, `current` moves, the unit restarts, and if it is not READY within 60 s
# `current` moves back by itself. It never prompts.
#
# --root DIR (or DESTDIR=DIR) installs into DIR instead of / and leaves the running system
# alone: no apt, no user or group is created (--user must name an existing account, whose
# name and group then own what edgenode would own), and systemctl / udevadm are printed
# ("test root, not run: ..."), not run. The restart and READY check is skipped there unless
# EDGENODE_READY_CMD is set: that command then stands for "restart and wait for READY" and its
# exit status decides (tests use it to simulate a unit that never gets ready).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: install.sh [--offline] [--root DIR] [--user NAME] [--time-server HOST]
                  [--apply-boot-config] [--reinstall] [--build-optional] [--no-apt]
                  [--no-compile] [--python PYTHON]
EOF
}

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${DESTDIR:-/}
OFFLINE=0 APPLY_BOOT=0 REINSTALL=0 BUILD_OPTIONAL=0 NO_APT=0 NO_COMPILE=0
RUN_USER=edgenode
TIME_SERVER=${TIME_SERVER:-}           # empty: keep the one configured before, else pool.ntp.org
PYTHON=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --offline) OFFLINE=1 ;;
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --user) RUN_USER=${2:?--user needs a name}; shift ;;
    --time-server) TIME_SERVER=${2:?--time-server needs a host}; shift ;;
    --apply-boot-config) APPLY_BOOT=1 ;;
    --reinstall) REINSTALL=1 ;;
    --build-optional) BUILD_OPTIONAL=1 ;;
    --no-apt) NO_APT=1 ;;
    --no-compile) NO_COMPILE=1 ;;
    --python) PYTHON=${2:?--python needs an interpreter}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "install.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "edgenode install: $*"; }
die() { echo "edgenode install: $*" >&2; exit 1; }

mkdir -p "$ROOT"
ROOT=$(cd "$ROOT" && pwd -P)
R=${ROOT%/}                      # path prefix: empty for the real system
REAL=0; [ -z "$R" ] && REAL=1
# Commands that change the running system: run on the real one, only named under a test root.
system() { if [ $REAL = 1 ]; then "$@"; else say "test root, not run: $*"; fi; }

BUNDLE=0; [ -f "$SRC/BUNDLE" ] && BUNDLE=1
[ $OFFLINE = 1 ] && [ $BUNDLE = 0 ] && die "--offline installs from a bundle only ($SRC is a \
checkout): build one with 'make bundle ARCH=... PY=...' and run its systemd/install.sh"

# -- the bundle is what it says -----------------------------------------------------------
bundle_value() { sed -n "s/^$1=//p" "$SRC/BUNDLE"; }
if [ $BUNDLE = 1 ]; then
  [ -f "$SRC/SHA256SUMS" ] || die "bundle $SRC has no SHA256SUMS: refusing to install"
  if ! bad=$(cd "$SRC" && sha256sum --quiet --strict -c SHA256SUMS 2>&1); then
    die "bundle $SRC does not match its SHA256SUMS, refusing to install (copy it again):
$bad"
  fi
  extra=$(cd "$SRC" && comm -23 <(find . -type f ! -name SHA256SUMS -printf '%P\n' | sort) \
    <(awk '{print $2}' SHA256SUMS | sort))
  [ -z "$extra" ] || die "bundle $SRC holds files not in its SHA256SUMS, refusing to install: \
$(echo "$extra" | tr '\n' ' ')"
  VERSION=$(bundle_value version)
  say "bundle $VERSION for $(bundle_value arch), Python $(bundle_value python): checksums ok"
else
  VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$SRC/edgenode/__init__.py")
fi
[[ "$VERSION" =~ ^[A-Za-z0-9.+_-]+$ ]] || die "cannot tell the version to install ('$VERSION')"

# -- apt, python, user --------------------------------------------------------------------
if [ $REAL = 1 ] && [ $OFFLINE = 0 ] && [ $NO_APT = 0 ]; then
  say "apt packages"
  apt-get update -qq
  # The compiler and headers build systemd-python (the [pi] extra) from its sdist.
  # shellcheck disable=SC2046  # no word at all when chrony keeps the time
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-dev gcc pkg-config libsystemd-dev alsa-utils i2c-tools \
    $(command -v chronyd >/dev/null || echo systemd-timesyncd)
fi
command -v "$PYTHON" >/dev/null || die "no $PYTHON: install python3 and python3-venv"
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
  || die "$PYTHON cannot make a venv: install python3-venv (apt-get install python3-venv)"
if [ $BUNDLE = 1 ]; then
  have_py=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$have_py" = "$(bundle_value python)" ] || die "this bundle is for Python \
$(bundle_value python) but $PYTHON is $have_py: build one with 'make bundle PY=$have_py'"
  [ "$(uname -m)" = "$(bundle_value arch)" ] || die "this bundle is for $(bundle_value arch) \
but this machine is $(uname -m): build one with 'make bundle ARCH=$(uname -m)'"
fi

if [ $REAL = 1 ]; then
  say "user $RUN_USER and groups"
  for group in gpio i2c dialout audio; do
    getent group "$group" >/dev/null || groupadd --system "$group"
  done
  id "$RUN_USER" >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/edgenode \
    --shell /usr/sbin/nologin --groups dialout,gpio,i2c,audio "$RUN_USER"
else
  id "$RUN_USER" >/dev/null 2>&1 || die "--user $RUN_USER: no such account on this machine \
(under --root the installer creates none: name an existing one)"
fi
RUN_GROUP=$(id -gn "$RUN_USER")
ADMIN=$(id -un)                  # root on a real install

# mkdir MODE OWNER:GROUP DIR and put MODE OWNER:GROUP SRC DST: only what differs changes.
mkd() { install -d -m "$1" "$3"; chown "$2" "$3"; }
# The system's own directories are made when missing (a test root) and otherwise left alone.
sysdir() { [ -d "$1" ] || install -d -m 0755 "$1"; }
put() {
  if ! cmp -s "$3" "$4"; then install -m "$1" "$3" "$4"; fi
  chmod "$1" "$4"; chown "$2" "$4"
}
# Point symlink $2 at $1 atomically (readers see the old or the new target, never none).
relink() {
  [ "$(readlink "$2" 2>/dev/null)" = "$1" ] && return 0
  ln -sfn "$1" "$2.new" && mv -T "$2.new" "$2"
}

# -- the release --------------------------------------------------------------------------
OPT="$R/opt/edgenode"
REL="$OPT/releases/$VERSION"
sysdir "$R/opt"
mkd 0755 "$ADMIN:" "$OPT"
mkd 0755 "$ADMIN:" "$OPT/releases"

pip_install() {
  local pip=("$REL/venv/bin/python" -m pip install -q --disable-pip-version-check)
  [ $NO_COMPILE = 1 ] && pip+=(--no-compile)
  if [ $BUNDLE = 1 ]; then
    # Only the bundle counts: no index, none of the machine's pip settings.
    (
      for var in $(compgen -e | grep '^PIP_' || true); do unset "$var"; done
      export PIP_NO_INDEX=1 PIP_CONFIG_FILE=/dev/null
      # shellcheck disable=SC2046  # the names are words on purpose
      "${pip[@]}" --no-index --find-links "$SRC/wheels" "edgenode==$VERSION" \
        $(bundle_value extras)
      for name in $(bundle_value sdists); do
        if [ $BUILD_OPTIONAL = 0 ]; then
          say "optional $name not installed: it has no wheel for this board (--build-optional)"
        elif "${pip[@]}" --no-index --find-links "$SRC/wheels" --find-links "$SRC/sdist" \
            "$name" 2>"$REL/.optional.log"; then
          say "optional $name built from its sdist"
        else
          say "optional $name NOT built (see the README for its build packages): \
$(tail -1 "$REL/.optional.log")"
        fi
        rm -f "$REL/.optional.log"
      done
    )
  else
    local wheels; wheels=$(mktemp -d)
    "$REL/venv/bin/python" -m pip wheel -q --no-deps -w "$wheels" "$SRC" >/dev/null
    "${pip[@]}" "$(ls "$wheels"/edgenode-*.whl)[pi]"
    rm -rf "$wheels"
  fi
}

if [ -f "$REL/.complete" ] && [ $REINSTALL = 0 ]; then
  if [ $BUNDLE = 1 ] && ! cmp -s "$SRC/SHA256SUMS" "$REL/SHA256SUMS"; then
    die "release $VERSION is installed from another build; pass --reinstall to replace it"
  fi
  say "release $VERSION already installed in $REL"
else
  say "release $VERSION into $REL"
  rm -rf "$REL"
  mkd 0755 "$ADMIN:" "$REL"
  "$PYTHON" -m venv "$REL/venv"
  pip_install
  cp -r "$SRC/systemd" "$SRC/hardware" "$SRC/README.md" "$REL/"
  [ $BUNDLE = 1 ] && cp "$SRC/BUNDLE" "$SRC/SHA256SUMS" "$REL/"
  chown -R "$ADMIN:" "$REL"
  touch "$REL/.complete"         # last: a release without it is half-made and is redone
fi

# -- config, state, units, rules, time ----------------------------------------------------
say "config, state, units, udev rules, time sync"
sysdir "$R/etc"
mkd 0750 "$ADMIN:$RUN_GROUP" "$R/etc/edgenode"
mkd 0750 "$ADMIN:$RUN_GROUP" "$R/etc/edgenode/credentials"
mkd 0750 "$ADMIN:$RUN_GROUP" "$R/etc/edgenode/operators"
# The unit loads this credential; systemd refuses to start a unit whose credential file is
# missing, so a node without a broker password gets an empty one.
[ -e "$R/etc/edgenode/credentials/mqtt-password" ] \
  || put 0640 "$ADMIN:$RUN_GROUP" /dev/null "$R/etc/edgenode/credentials/mqtt-password"
sysdir "$R/var/lib"
mkd 0750 "$RUN_USER:$RUN_GROUP" "$R/var/lib/edgenode"

for dir in etc/systemd etc/systemd/system etc/udev etc/udev/rules.d usr usr/local \
    usr/local/bin; do
  sysdir "$R/$dir"
done
put 0644 "$ADMIN:" "$SRC/systemd/edgenode.service" "$R/etc/systemd/system/edgenode.service"
put 0644 "$ADMIN:" "$SRC/systemd/edgenode-firstboot.service" \
  "$R/etc/systemd/system/edgenode-firstboot.service"
put 0644 "$ADMIN:" "$SRC/hardware/99-edgenode.rules" "$R/etc/udev/rules.d/99-edgenode.rules"
put 0755 "$ADMIN:" "$SRC/systemd/edgenode-rollback" "$R/usr/local/bin/edgenode-rollback"
relink /opt/edgenode/current/venv/bin/edgenode "$R/usr/local/bin/edgenode"

TIMESYNCD="$R/etc/systemd/timesyncd.conf.d/edgenode.conf"
CHRONY="$R/etc/chrony/conf.d/edgenode.conf"
if [ -z "$TIME_SERVER" ]; then
  # A run without --time-server keeps the server given before.
  TIME_SERVER=$(sed -n 's/^NTP=//p; s/^server \([^ ]*\) iburst$/\1/p' "$TIMESYNCD" "$CHRONY" \
    2>/dev/null | head -1 || true)
  TIME_SERVER=${TIME_SERVER:-pool.ntp.org}
fi
[[ "$TIME_SERVER" =~ ^[A-Za-z0-9.:-]+$ ]] || die "--time-server '$TIME_SERVER': not a host name"
timeconf=$(mktemp)
sed "s/@TIME_SERVER@/$TIME_SERVER/" "$SRC/systemd/timesyncd-edgenode.conf" > "$timeconf"
if command -v chronyd >/dev/null && [ $REAL = 1 ]; then
  sysdir "$R/etc/chrony/conf.d"
  echo "server $TIME_SERVER iburst" > "$timeconf"
  if ! cmp -s "$timeconf" "$CHRONY"; then
    put 0644 "$ADMIN:" "$timeconf" "$CHRONY"
    system systemctl restart chrony.service
  fi
else
  sysdir "$R/etc/systemd/timesyncd.conf.d"
  system systemctl enable --now systemd-timesyncd.service || say "WARNING: systemd-timesyncd \
is missing (apt-get install systemd-timesyncd): the clock will not be synchronised and signed \
commands will be refused"
  if ! cmp -s "$timeconf" "$TIMESYNCD"; then
    put 0644 "$ADMIN:" "$timeconf" "$TIMESYNCD"
    system systemctl restart systemd-timesyncd.service || true
  fi
fi
rm -f "$timeconf"
say "time sync towards $TIME_SERVER (--time-server)"

system udevadm control --reload-rules || say "udevadm: rules reload failed (no udev here?)"
system systemctl daemon-reload
system systemctl enable edgenode.service edgenode-firstboot.service

# -- boot config --------------------------------------------------------------------------
BOOTCONF="$R/boot/firmware/config.txt"
# Older images keep it in /boot.
[ ! -d "$R/boot/firmware" ] && [ -f "$R/boot/config.txt" ] && BOOTCONF="$R/boot/config.txt"
if [ $APPLY_BOOT = 1 ]; then
  [ -f "$BOOTCONF" ] || die "--apply-boot-config: no $BOOTCONF (is this a Raspberry Pi?)"
  new=$(mktemp)
  { sed '/^# BEGIN edgenode$/,/^# END edgenode$/d' "$BOOTCONF"
    echo "# BEGIN edgenode"; cat "$SRC/hardware/config.txt"; echo "# END edgenode"; } > "$new"
  if cmp -s "$new" "$BOOTCONF"; then
    say "boot config $BOOTCONF already has the edgenode lines"
  else
    cat "$new" > "$BOOTCONF"     # FAT: no modes to keep, and a rename may cross nothing
    say "boot config lines written to $BOOTCONF: reboot for them to apply"
  fi
  rm -f "$new"
else
  say "the board needs these lines in $BOOTCONF (written with --apply-boot-config):"
  grep -v '^\s*\(#\|$\)' "$SRC/hardware/config.txt" | sed 's/^/    /'
fi

# -- switch, restart, roll back by itself -------------------------------------------------
PREV=$(readlink "$OPT/current" 2>/dev/null || true)
CONFIG="$R/etc/edgenode/edgenode.toml"

ready() {
  if [ -n "${EDGENODE_READY_CMD:-}" ]; then
    bash -c "$EDGENODE_READY_CMD"
  elif [ $REAL = 1 ]; then
    # Type=notify: restart returns once the daemon said READY=1, or fails.
    timeout 60 systemctl restart edgenode.service && systemctl is-active --quiet edgenode.service
  else
    say "test root: restart and READY check skipped (EDGENODE_READY_CMD simulates it)"
  fi
}

if [ "$PREV" = "releases/$VERSION" ]; then
  say "release $VERSION is current: nothing to switch"
else
  was_active=0
  [ $REAL = 1 ] && systemctl is-active --quiet edgenode.service && was_active=1
  [ -n "$PREV" ] && relink "$PREV" "$OPT/previous"
  relink "releases/$VERSION" "$OPT/current"
  say "current -> releases/$VERSION${PREV:+ (previous: $PREV)}"
  if [ ! -f "$CONFIG" ]; then
    say "not provisioned yet: run 'edgenode provision --site S --node N --broker URL --ca CA.pem \
--hardware VARIANT', then 'systemctl start edgenode'"
  elif [ $was_active = 1 ] || [ -n "${EDGENODE_READY_CMD:-}" ] || [ -z "$PREV" ]; then
    ok=1
    "$REL/venv/bin/edgenode" validate-config "$CONFIG" || ok=0
    [ $ok = 1 ] && { ready || ok=0; }
    if [ $ok = 0 ] && [ -n "$PREV" ]; then
      say "release $VERSION did not get READY within 60 s: rolling back to $PREV"
      relink "releases/$VERSION" "$OPT/previous"
      relink "$PREV" "$OPT/current"
      [ $REAL = 1 ] && systemctl restart edgenode.service || true
      die "rolled back to $PREV; see journalctl -u edgenode for why $VERSION failed"
    fi
    [ $ok = 1 ] || die "release $VERSION installed but not READY: journalctl -u edgenode"
    say "release $VERSION running"
  else
    say "edgenode was not running, so it was not started: systemctl start edgenode"
  fi
fi
[ $REINSTALL = 1 ] && [ "$PREV" = "releases/$VERSION" ] \
  && say "release $VERSION was rebuilt in place: systemctl restart edgenode to run it"
say "done: release $VERSION in $OPT, config $R/etc/edgenode, state $R/var/lib/edgenode"

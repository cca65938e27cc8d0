#!/usr/bin/env bash
# Install meterd as a systemd service on a Raspberry Pi-class gateway (Debian/Raspberry Pi OS).
#   sudo scripts/install-systemd.sh            # from a checkout: installs into /opt/meterd
#   sudo scripts/install-systemd.sh --dry-run  # print what would be done
# Creates: a `meterd` system user in the dialout group, /opt/meterd (the code), /etc/meterd/meterd.yaml
# (a starting config, never overwritten), /var/lib/meterd (SQLite data), and the meterd.service unit.
set -euo pipefail

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
run() { if [ "$DRY" = 1 ]; then echo "+ $*"; else "$@"; fi; }

SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/meterd
CONF_DIR=/etc/meterd
DATA_DIR=/var/lib/meterd
UNIT=/etc/systemd/system/meterd.service

if [ "$DRY" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "install-systemd.sh: run as root (sudo), or with --dry-run to see the steps" >&2
  exit 1
fi
command -v node >/dev/null || { echo "install-systemd.sh: Node.js 20 or newer is required (apt-get install nodejs)" >&2; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || { echo "install-systemd.sh: Node.js $(node -v) is too old; meterd needs 20.19 or newer" >&2; exit 1; }

if ! id meterd >/dev/null 2>&1; then
  run useradd --system --home-dir "$DATA_DIR" --shell /usr/sbin/nologin --user-group meterd
fi
run usermod -a -G dialout meterd

run mkdir -p "$PREFIX" "$CONF_DIR" "$DATA_DIR"
# Code: the checkout built to JavaScript (no TypeScript loader at run time), without its data, tests and history.
run sh -c "cd '$SRC' && npm ci --no-audit --no-fund && npm run build"
run rsync -a --delete --exclude .git --exclude data --exclude node_modules --exclude test "$SRC/" "$PREFIX/"
run sh -c "cd '$PREFIX' && npm ci --omit=dev --no-audit --no-fund"

if [ ! -f "$CONF_DIR/meterd.yaml" ]; then
  if [ "$DRY" = 1 ]; then echo "+ write $CONF_DIR/meterd.yaml (starting config)"; else
  cat > "$CONF_DIR/meterd.yaml" <<'YAML'
# meterd configuration: check it with `meterd config check -c /etc/meterd/meterd.yaml`
gateway:
  id: gw-1                       # becomes the MQTT topic level meterd/gw-1/...
  dataDir: /var/lib/meterd
mqtt:
  url: mqtt://127.0.0.1:1883
buses:
  - id: bus1
    port: /dev/ttyUSB0           # or tcp://10.0.0.7:8899 for a serial-over-TCP converter
    baudRate: 2400
    parity: even
meters: []                       # - { id: room-101, bus: bus1, address: "000012345678", profile: dlt645-2007-single-phase-prepaid }
YAML
  fi
fi
if [ ! -f "$CONF_DIR/meterd.env" ]; then
  # Secrets referenced as { env: NAME } go here; METERD_CONFIG lets `meterd card` record sales in the daemon's books.
  if [ "$DRY" = 1 ]; then echo "+ write $CONF_DIR/meterd.env (METERD_CONFIG)"; else
    printf 'METERD_CONFIG=%s\n' "$CONF_DIR/meterd.yaml" > "$CONF_DIR/meterd.env"
    chmod 600 "$CONF_DIR/meterd.env"
  fi
fi
run chown -R meterd:meterd "$DATA_DIR"
run chown root:meterd "$CONF_DIR" "$CONF_DIR/meterd.yaml"
run chmod 750 "$CONF_DIR"
run chmod 640 "$CONF_DIR/meterd.yaml"

run install -m 644 "$SRC/scripts/install/meterd.service" "$UNIT"
run systemctl daemon-reload
run systemctl enable meterd.service
echo "installed. Edit $CONF_DIR/meterd.yaml, then: meterd doctor -c $CONF_DIR/meterd.yaml && systemctl start meterd"
echo "logs: journalctl -u meterd -f"

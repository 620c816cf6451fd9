#!/usr/bin/env bash
# Install a Reef tentacle (worker agent) and register it with the Reef server.
#
#   curl -fsSL @@SERVER_URL@@/infrastructure/tentacle/install.sh | sudo bash -s -- \
#     --server @@SERVER_URL@@ --apikey API-XXXX --workerpool "Default Worker Pool" [--polling] [--name NAME]
#
# Options: --space NAME, --server-thumbprint THUMBPRINT, --public-hostname HOST, --port N (listening,
# default 10933), --polling-address URL (default https://SERVER-HOST:@@POLLING_PORT@@/, this server's
# polling port), --prefix DIR (default /opt/reef-tentacle), --no-service (run in the foreground instead
# of installing a systemd unit), --force (take over a worker of the same name registered with another
# certificate, e.g. after rebuilding the machine), --uninstall. The API key is used once, to register,
# and is passed to the agent through its environment: it is never written to disk.
#
# Running it again is safe: the instance under --prefix keeps its certificate, and registering with the
# same thumbprint updates the same worker (same id; its pools, policy, disabled flag and permissions are
# kept, and the --workerpool pools are added).
set -euo pipefail

BUNDLE_URL="@@BUNDLE_URL@@"
BUNDLE_SHA256="@@BUNDLE_SHA256@@"
POLLING_PORT="@@POLLING_PORT@@"
SERVER="" APIKEY="${REEF_API_KEY:-}" SPACE="" NAME="$(hostname)" POLLING=0 SERVICE=1 UNINSTALL=0 FORCE=0
PREFIX="/opt/reef-tentacle" PORT=10933 PUBLIC_HOST="" THUMBPRINT="" POLLING_ADDRESS="" POOLS=()

die() { echo "reef-tentacle install: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --server) SERVER="${2:?--server needs a URL}"; shift 2 ;;
    --apikey) APIKEY="${2:?--apikey needs a key}"; shift 2 ;;
    --workerpool) POOLS+=("${2:?--workerpool needs a name}"); shift 2 ;;
    --space) SPACE="${2:?--space needs a name}"; shift 2 ;;
    --name) NAME="${2:?--name needs a name}"; shift 2 ;;
    --polling) POLLING=1; shift ;;
    --polling-address) POLLING_ADDRESS="${2:?}"; shift 2 ;;
    --server-thumbprint) THUMBPRINT="${2:?}"; shift 2 ;;
    --public-hostname) PUBLIC_HOST="${2:?}"; shift 2 ;;
    --port) PORT="${2:?}"; shift 2 ;;
    --prefix) PREFIX="${2:?}"; shift 2 ;;
    --no-service) SERVICE=0; shift ;;
    --force) FORCE=1; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    *) die "unknown option $1 (see the comment at the top of this script)" ;;
  esac
done

PYTHON="$(command -v python3 || true)"
[ -n "$PYTHON" ] || die "python3 is required on the worker"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || die "python3 3.9 or newer is required"
BUNDLE="$PREFIX/$(basename "$BUNDLE_URL")"
HOME_DIR="$PREFIX/instance"
UNIT=/etc/systemd/system/reef-tentacle.service
USE_SYSTEMD=0
if [ "$SERVICE" = 1 ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then USE_SYSTEMD=1; fi
SERVICE_USER=root
if [ "$(id -u)" = 0 ] && [ "$SERVICE" = 1 ]; then SERVICE_USER=reef-tentacle; fi

agent() { "$PYTHON" "$BUNDLE" "$@" --home "$HOME_DIR"; }

if [ "$UNINSTALL" = 1 ]; then
  [ -n "$SERVER" ] || die "--uninstall needs --server (to deregister)"
  if [ -f "$BUNDLE" ] && [ -n "$APIKEY" ]; then
    REEF_API_KEY="$APIKEY" agent deregister-worker --server "$SERVER" || echo "warning: could not deregister; remove the worker in the portal" >&2
  fi
  if [ "$USE_SYSTEMD" = 1 ] && [ -f "$UNIT" ]; then
    systemctl disable --now reef-tentacle.service || true
    rm -f "$UNIT"; systemctl daemon-reload
  fi
  rm -rf "$PREFIX"
  echo "Reef tentacle removed from $PREFIX."
  exit 0
fi

[ -n "$SERVER" ] || die "--server is required"
[ -n "$APIKEY" ] || die "--apikey (or REEF_API_KEY) is required"
[ "${#POOLS[@]}" -gt 0 ] || die "at least one --workerpool is required"

if [ "$SERVICE_USER" != root ] && ! id "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --home-dir "$PREFIX" --shell /usr/sbin/nologin "$SERVICE_USER"
fi
mkdir -p "$PREFIX"
chmod 0755 "$PREFIX"

# Download and check the agent before anything runs it.
TMP="$(mktemp "$PREFIX/.bundle.XXXXXX")"
trap 'rm -f "$TMP"' EXIT
curl -fsSL "$BUNDLE_URL" -o "$TMP" || die "could not download the agent from $BUNDLE_URL"
ACTUAL="$("$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$TMP")"
[ "$ACTUAL" = "$BUNDLE_SHA256" ] || die "the downloaded agent's SHA-256 is $ACTUAL, expected $BUNDLE_SHA256: refusing to install it"
mv "$TMP" "$BUNDLE"; chmod 0644 "$BUNDLE"; trap - EXIT

[ -f "$HOME_DIR/tentacle.json" ] || agent create-instance
if [ "$POLLING" = 1 ] && [ -z "$POLLING_ADDRESS" ]; then
  POLLING_ADDRESS="$("$PYTHON" -c 'import sys, urllib.parse as u; h = u.urlparse(sys.argv[1]).hostname or ""; print("https://%s:%s/" % ("[%s]" % h if ":" in h else h, sys.argv[2]))' "$SERVER" "$POLLING_PORT")"
fi
CONFIGURE=(configure)
if [ "$POLLING" = 1 ]; then CONFIGURE+=(--polling); else CONFIGURE+=(--listening --port "$PORT"); fi
[ -n "$THUMBPRINT" ] && CONFIGURE+=(--trust "$THUMBPRINT")
[ -n "$POLLING_ADDRESS" ] && CONFIGURE+=(--server-comms-address "$POLLING_ADDRESS")
agent "${CONFIGURE[@]}"

REGISTER=(register-worker --server "$SERVER" --name "$NAME")
[ "$FORCE" = 1 ] && REGISTER+=(--force)
if [ "$POLLING" = 1 ]; then REGISTER+=(--comms-style TentacleActive); else REGISTER+=(--comms-style TentaclePassive); fi
for pool in "${POOLS[@]}"; do REGISTER+=(--workerpool "$pool"); done
[ -n "$SPACE" ] && REGISTER+=(--space "$SPACE")
[ -n "$THUMBPRINT" ] && REGISTER+=(--server-thumbprint "$THUMBPRINT")
[ -n "$PUBLIC_HOST" ] && REGISTER+=(--public-hostname "$PUBLIC_HOST")
[ -n "$POLLING_ADDRESS" ] && REGISTER+=(--server-comms-address "$POLLING_ADDRESS")
REEF_API_KEY="$APIKEY" agent "${REGISTER[@]}"
unset APIKEY REEF_API_KEY

if [ "$SERVICE_USER" != root ]; then chown -R "$SERVICE_USER:" "$HOME_DIR"; fi

if [ "$USE_SYSTEMD" = 1 ]; then
  cat > "$UNIT" <<UNIT_EOF
[Unit]
Description=Reef tentacle (worker agent)
After=network-online.target
Wants=network-online.target

[Service]
User=$SERVICE_USER
ExecStart=$PYTHON $BUNDLE run --home $HOME_DIR
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT_EOF
  systemctl daemon-reload
  systemctl enable reef-tentacle.service >/dev/null
  systemctl restart reef-tentacle.service
  echo "Reef tentacle '$NAME' installed in $PREFIX and running as the reef-tentacle service."
else
  echo "Reef tentacle '$NAME' installed in $PREFIX; running it in the foreground (no systemd)."
  exec "$PYTHON" "$BUNDLE" run --home "$HOME_DIR"
fi

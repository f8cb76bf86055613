#!/usr/bin/env bash
# Runs a command with a private Azurite blob service: installs the pinned npm `azurite` into .tools/
# (git-ignored) when missing, starts it on a free loopback port with a temporary location, exports
# AZURITE_BLOB_STORAGE_URL and AZURE_STORAGE_USE_EMULATOR for the command, and stops it afterwards.
#   scripts/azurite.sh cargo test --workspace
set -euo pipefail
AZURITE_VERSION=3.37.0
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.tools/node_modules/.bin/azurite-blob"
if [ ! -x "$bin" ]; then
  command -v npm >/dev/null || { echo "error: npm is required to install Azurite (Node.js 20+)" >&2; exit 2; }
  echo "installing azurite@$AZURITE_VERSION into .tools/ ..." >&2
  npm install --prefix "$root/.tools" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >&2
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
location=$(mktemp -d)
"$bin" --blobHost 127.0.0.1 --blobPort "$port" --location "$location" --skipApiVersionCheck --loose \
  --disableTelemetry >"$location/azurite.log" 2>&1 &
azurite_pid=$!
cleanup() { kill "$azurite_pid" 2>/dev/null || true; wait "$azurite_pid" 2>/dev/null || true; rm -rf "$location"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$azurite_pid" 2>/dev/null || { echo "error: Azurite did not start:" >&2; cat "$location/azurite.log" >&2; exit 2; }
  sleep 0.1
done
export AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:$port"
export AZURE_STORAGE_USE_EMULATOR=true
echo "Azurite blob service on $AZURITE_BLOB_STORAGE_URL" >&2
"$@"

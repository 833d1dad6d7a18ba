#!/usr/bin/env bash
# The browser the console's end-to-end tests drive: Debian's chromium package, installed
# when missing (as services.sh installs PostgreSQL). Playwright launches it by path and
# never downloads a browser of its own. Prints the path of the executable.
set -euo pipefail

log() { echo "browser: $*" >&2; }

chromium_path() { command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null; }

if ! chromium_path >/dev/null; then
  log "installing chromium from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
chromium_path

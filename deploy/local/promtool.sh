#!/usr/bin/env bash
# Prints the path of a promtool, fetched once into the cache without installing anything:
# Debian's `prometheus` package is downloaded with apt-get and only unpacked (dpkg-deb -x),
# so no Prometheus daemon is installed or started. Used by `make alerts-test`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${QBSYNC_CACHE_DIR:-$ROOT/.cache}"
DIR="$CACHE/prometheus"
PROMTOOL="$DIR/usr/bin/promtool"

log() { echo "promtool: $*" >&2; }

if [[ ! -x "$PROMTOOL" ]]; then
  command -v apt-get >/dev/null || { log "apt-get is required to fetch Debian's prometheus package"; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  chmod 777 "$work"  # apt's download user writes here
  if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
    log "updating the package index once"
    apt-get update -qq >/dev/null 2>&1 || sudo -n apt-get update -qq >/dev/null
    (cd "$work" && apt-get download prometheus >/dev/null 2>&1) \
      || { log "could not download Debian's prometheus package"; exit 1; }
  fi
  log "unpacking $(basename "$work"/prometheus_*.deb) into $DIR"
  rm -rf "$DIR.partial" && mkdir -p "$DIR.partial"
  dpkg-deb -x "$work"/prometheus_*.deb "$DIR.partial"
  rm -rf "$DIR" && mv "$DIR.partial" "$DIR"
fi
echo "$PROMTOOL"

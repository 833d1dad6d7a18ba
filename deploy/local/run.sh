#!/usr/bin/env bash
# `make run`: Kafka and PostgreSQL, then the demo in the foreground. On Ctrl-C the demo
# stops every process it started, and the broker and database are stopped too unless they
# were already running before (a developer's `make services-up` is left as it was).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
already=false
if [[ -f .run/kafka/pid ]] && kill -0 "$(cat .run/kafka/pid)" 2>/dev/null; then already=true; fi
deploy/local/services.sh up
cleanup() { if [[ $already == false ]]; then deploy/local/services.sh down; fi; }
trap cleanup EXIT
trap 'true' INT  # the demo handles Ctrl-C; this shell only waits for it to finish
.venv/bin/python -m qbsync.demo

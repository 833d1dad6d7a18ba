"""`python -m qbsync.healthcheck`: the container's HEALTHCHECK (deploy/Dockerfile).

Asks the process's own /healthz (liveness: its event loop answers) on
QBSYNC_HEALTH_PORT, or QBSYNC_HTTP_PORT (the services' and the exporter's server); exit
code 0 when it answers 200, 1 otherwise, with one line saying why. The standard library
only, so that a check costs a fraction of a second and no settings are read."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def main() -> None:
    port = os.environ.get("QBSYNC_HEALTH_PORT") or os.environ.get("QBSYNC_HTTP_PORT") or "8000"
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if status != 200:
        print(f"healthcheck: {url} answered {status}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()

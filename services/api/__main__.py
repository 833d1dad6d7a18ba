import signal
import sys

# Stopped before the service installed its own handlers (while importing): exit cleanly.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

from services.api.server import main  # noqa: E402

main()

"""An OTLP/HTTP trace sink for measuring what tracing costs (bench/README.md, Tracing).

    .venv/bin/python -m bench.otlp_sink --port 4318 &
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 .venv/bin/python -m bench.sync_bench

It accepts spans as a collector would (the receiver of the tests, tests/support/otlp.py),
keeps none of them, and on SIGTERM or SIGINT prints how many arrived, by service and name:
what a run made, so a span per record would show.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections import Counter

from tests.support.otlp import OtlpReceiver


async def serve(port: int) -> Counter[str]:
    receiver = OtlpReceiver(port=port)
    await receiver.start()
    print(f"listening on {receiver.endpoint}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await receiver.stop()
    return Counter(f"{span.service} {span.name}" for span in receiver.spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    counts = asyncio.run(serve(args.port))
    print(json.dumps({"spans": sum(counts.values()), "by_name": dict(counts.most_common())}))


if __name__ == "__main__":
    main()

"""The event loop every long-running service runs on.

uvloop (libuv) instead of asyncio's default loop: the services spend much of their CPU in
the loop's socket and callback machinery (the pusher keeps hundreds of QuickBooks requests,
its database and Kafka connections busy at once), and uvloop does that work in C.
"""

from __future__ import annotations

import asyncio

import uvloop


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop()

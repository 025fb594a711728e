"""A WebSocket relay in front of the real server that sends messages more than once.

doorman itself never repeats a ``message`` (ids are unique), but a client may see one
twice: a proxy that retries, or a history replay after a reconnect. The relay passes
every frame through both ways (the Authorization header too) and:

- ``duplicate = True``: sends every ``message`` frame twice;
- ``replay``: frames sent to the next connection right after its ``welcome`` (as a
  history replay would), then cleared;
- ``drop()``: cuts every connection without a close frame (the client sees 1006).

It counts the ``message`` frames it sent to clients, so a test can show that the
duplicates did reach the client.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


class Relay:
    def __init__(self, upstream: str):
        self.upstream = upstream
        self.duplicate = False
        self.replay: list[dict[str, Any]] = []
        self.sent_messages = 0
        self.connections = 0
        self._downstream: set[ServerConnection] = set()
        self._server: Any = None
        self.port = 0

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    def drop(self) -> None:
        for conn in list(self._downstream):
            conn.transport.abort()

    async def _handle(self, down: ServerConnection) -> None:
        self.connections += 1
        self._downstream.add(down)
        headers = {}
        assert down.request is not None
        if "Authorization" in down.request.headers:
            headers["Authorization"] = down.request.headers["Authorization"]
        try:
            async with connect(self.upstream, additional_headers=headers or None) as up:
                await asyncio.gather(self._pipe_up(down, up), self._pipe_down(up, down))
        except (ConnectionClosed, OSError):
            pass
        finally:
            self._downstream.discard(down)

    async def _pipe_up(self, down: ServerConnection, up: Any) -> None:
        try:
            async for raw in down:
                await up.send(raw)
        finally:
            await up.close()

    async def _pipe_down(self, up: Any, down: ServerConnection) -> None:
        try:
            async for raw in up:
                frame = json.loads(raw)
                await down.send(raw)
                if frame.get("type") == "message":
                    self.sent_messages += 1
                    if self.duplicate:
                        await down.send(raw)
                        self.sent_messages += 1
                if frame.get("type") == "welcome" and self.replay:
                    replay, self.replay = self.replay, []
                    for f in replay:
                        await down.send(json.dumps(f))
                        self.sent_messages += 1
        finally:
            rcvd = up.close_code or 1000
            await down.close(rcvd if rcvd not in (1005, 1006) else 1011, up.close_reason or "")

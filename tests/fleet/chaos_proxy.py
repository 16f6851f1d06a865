"""A small TCP proxy that misbehaves on purpose, between a cabinet and its hub (issue 12,
partitions): for a request it may drop the connection before the request reaches the hub, or after
the hub has acted but before its answer is back, delays chunks, and sends chunks twice (a second copy
on a fresh connection, as a confused middlebox or a retrying load balancer would).

Real bytes on real sockets, seeded, so a failure can be replayed. Runs its own asyncio loop
in a thread; ``chaos`` switches the misbehaviour on and off (off: a plain relay).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter


class ChaosProxy:
    def __init__(self, target_port: int, *, seed: int = 12, drop_request: float = 0.08,
                 drop_response: float = 0.12, delay: float = 0.3, duplicate: float = 0.15,
                 max_delay_s: float = 0.4) -> None:
        self.target_port = target_port
        self.rng = random.Random(seed)
        self.p_drop_request, self.p_drop_response = drop_request, drop_response
        self.p_delay, self.p_duplicate, self.max_delay_s = delay, duplicate, max_delay_s
        self.chaos = False
        self.counts: Counter[str] = Counter()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    # ---------------------------------------------------------------- life cycle
    def start(self) -> ChaosProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(serve())
        self._loop.run_forever()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub/v1"

    # ------------------------------------------------------------------- relaying
    def _fate(self) -> str:
        """What happens to one chunk from the cabinet (in practice: one request)."""
        if not self.chaos:
            return "pass"
        roll = self.rng.random()
        if roll < self.p_drop_request:
            return "drop_request"
        if roll < self.p_drop_request + self.p_drop_response:
            return "drop_response"
        return "pass"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lose_answer = False
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        done = asyncio.Event()

        async def to_hub() -> None:
            nonlocal lose_answer
            while not done.is_set():
                data = await reader.read(65536)
                if not data:
                    break
                fate = self._fate()
                if self.chaos and self.rng.random() < self.p_delay:
                    self.counts["delayed"] += 1
                    await asyncio.sleep(self.rng.uniform(0, self.max_delay_s))
                if fate == "drop_request":
                    self.counts["dropped_request"] += 1
                    break
                lose_answer = lose_answer or fate == "drop_response"
                up_writer.write(data)
                await up_writer.drain()
                if self.chaos and self.rng.random() < self.p_duplicate:
                    self.counts["duplicated"] += 1
                    asyncio.get_running_loop().create_task(self._send_again(data))
            done.set()

        async def to_cabinet() -> None:
            while not done.is_set():
                data = await up_reader.read(65536)
                if not data:
                    break
                if lose_answer:
                    self.counts["dropped_response"] += 1  # the hub acted; the answer is lost
                    break
                writer.write(data)
                await writer.drain()
            done.set()

        tasks = [asyncio.ensure_future(to_hub()), asyncio.ensure_future(to_cabinet())]
        await done.wait()
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()

    async def _send_again(self, data: bytes) -> None:
        """The same bytes once more, on a connection of their own; the answer is dropped."""
        with contextlib.suppress(Exception):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            writer.write(data)
            await writer.drain()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader.read(65536), timeout=5)
            writer.close()

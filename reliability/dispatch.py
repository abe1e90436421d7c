"""A pool of client threads fed through a bounded queue: the generator (hypothesis, in the caller's thread)
stays at most a few requests ahead of the senders. Protocol-free: each thread has its own client, and
``handle(client, request)`` sends a request and records its answer."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from reliability.strategies import Family, draw_families


class Client(Protocol):
    def close(self) -> None: ...


class Dispatcher:
    """``concurrency`` threads, each with the client ``open_client()`` made for it, handing every submitted
    request to ``handle(client, request)``; :meth:`close` waits for the queue to drain, then closes them."""

    def __init__(self, open_client: Callable[[], Client], handle: Callable[[Any, Any], None],
                 concurrency: int) -> None:  # fmt: skip
        self.handle = handle
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=concurrency * 4)
        self.threads = [
            threading.Thread(target=self._work, args=(open_client(),), daemon=True, name=f"sender-{i}")
            for i in range(concurrency)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, request: Any) -> None:
        self.queue.put(request)

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()

    def _work(self, client: Client) -> None:
        while (request := self.queue.get()) is not None:
            self.handle(client, request)
        client.close()


def dispatch_families(families: list[Family], only: list[str] | None, requests: int, seed: int, concurrency: int,
                      open_client: Callable[[], Client], handle: Callable[[Any, Any], None],
                      key: Callable[[Any], str], log: Callable[[str], None]) -> dict[str, int]:  # fmt: skip
    """About ``requests`` distinct examples of ``families`` (those named in ``only``, or all), drawn and
    handed to ``concurrency`` client threads; returns how many each family generated."""
    chosen = [f for f in families if only is None or f[0] in only]
    dispatcher = Dispatcher(open_client, handle, concurrency)
    try:
        return draw_families(chosen, requests, seed, dispatcher.submit, key, log)
    finally:
        dispatcher.close()

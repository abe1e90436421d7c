"""Coalescing concurrent calls into one: the requests that arrive while a store lookup (or a predictor call)
is in flight go out together in the next one.

There is no timer: a lone request is sent at the next turn of the event loop, so at low load nothing
waits; under load, each call carries everything that queued up meanwhile, and the per-call costs (a
round trip, a Lua script, an HTTP exchange, one onnxruntime run) are paid once per batch instead of once per
transaction. Each submission gets exactly its own slice of the answer; if the call fails, every
submission it carried gets the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """``await submit(items)`` returns ``call(items)`` — but concurrent submissions share one ``call`` of
    their concatenation, at most ``max_items`` items (a single larger submission goes alone) and at most
    ``max_in_flight`` calls at once."""

    def __init__(
        self,
        call: Callable[[list[Item]], Awaitable[Sequence[Result]]],
        max_items: int,
        max_in_flight: int = 1,
    ) -> None:
        self.call = call
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self._pending: list[tuple[list[Item], asyncio.Future]] = []
        self._in_flight = 0

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((list(items), future))
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[list[Item], asyncio.Future]]:
        taken, count = [], 0
        while self._pending and (not taken or count + len(self._pending[0][0]) <= self.max_items):
            items, future = self._pending.pop(0)
            taken.append((items, future))
            count += len(items)
        return taken

    async def _drain(self) -> None:
        try:
            while self._pending:
                taken = self._take()
                merged = [item for items, _ in taken for item in items]
                try:
                    results = list(await self.call(merged))
                except BaseException as exc:  # every caller learns why; cancellation included
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                start = 0
                for items, future in taken:
                    if not future.done():  # its caller may have gone (a client that disconnected)
                        future.set_result(results[start : start + len(items)])
                    start += len(items)
        finally:
            self._in_flight -= 1

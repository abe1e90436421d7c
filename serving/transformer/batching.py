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
from collections.abc import Awaitable, Callable, Sized
from typing import Generic, TypeVar

Part = TypeVar("Part", bound=Sized)  # what one caller submits: a list of keys, a matrix of rows, …
Answer = TypeVar("Answer")  # what a call answers for a merged submission, sliced back per caller


def concatenate(parts: list) -> list:
    """The default merge: the submitted lists, one after another."""
    return [item for part in parts for item in part]


class Coalescer(Generic[Part, Answer]):
    """``await submit(part)`` returns ``call(part)`` — but concurrent submissions share one ``call`` of
    their merge (``merge``: by default the lists concatenated), at most ``max_items`` items (a single larger
    submission goes alone) and at most ``max_in_flight`` calls at once. The answer is sliced back: each
    caller gets ``answer[start : start + len(part)]``."""

    def __init__(
        self,
        call: Callable[[Part], Awaitable[Answer]],
        max_items: int,
        max_in_flight: int = 1,
        merge: Callable[[list[Part]], Part] = concatenate,
    ) -> None:
        self.call = call
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self.merge = merge
        self._pending: list[tuple[Part, asyncio.Future]] = []
        self._in_flight = 0

    async def submit(self, part: Part) -> Answer:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((part, future))
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[Part, asyncio.Future]]:
        taken, count = [], 0
        while self._pending and (not taken or count + len(self._pending[0][0]) <= self.max_items):
            part, future = self._pending.pop(0)
            taken.append((part, future))
            count += len(part)
        return taken

    async def _drain(self) -> None:
        try:
            while self._pending:
                taken = self._take()
                merged = taken[0][0] if len(taken) == 1 else self.merge([part for part, _ in taken])
                try:
                    answer = await self.call(merged)
                except BaseException as exc:  # every caller learns why; cancellation included
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                start = 0
                for part, future in taken:
                    if not future.done():  # its caller may have gone (a client that disconnected)
                        future.set_result(answer[start : start + len(part)])  # type: ignore[index]
                    start += len(part)
        finally:
            self._in_flight -= 1

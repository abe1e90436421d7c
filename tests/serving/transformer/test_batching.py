"""Coalescing: concurrent submissions share calls, each gets its own slice, errors reach every caller."""

from __future__ import annotations

import asyncio

import pytest

from serving.transformer.batching import Coalescer


class Recorder:
    def __init__(self, delay: float = 0.01, fail: Exception | None = None) -> None:
        self.calls: list[list[int]] = []
        self.delay, self.fail = delay, fail

    async def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(items)
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return [i * 10 for i in items]


def test_concurrent_submissions_share_a_call_and_get_their_own_slices() -> None:
    recorder = Recorder()

    async def run() -> list[list[int]]:
        coalescer = Coalescer(recorder, max_items=100)
        return await asyncio.gather(*(coalescer.submit([i, i + 100]) for i in range(20)))

    answers = asyncio.run(run())
    assert answers == [[i * 10, (i + 100) * 10] for i in range(20)]
    assert len(recorder.calls) < 20 and sum(len(c) for c in recorder.calls) == 40


def test_a_lone_submission_goes_at_once() -> None:
    recorder = Recorder(delay=0)

    async def run() -> float:
        coalescer = Coalescer(recorder, max_items=10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await coalescer.submit([1]) == [10]
        return loop.time() - started

    assert asyncio.run(run()) < 0.05 and recorder.calls == [[1]]


def test_calls_hold_at_most_max_items_unless_one_submission_is_larger() -> None:
    recorder = Recorder()

    async def run() -> None:
        coalescer = Coalescer(recorder, max_items=5)
        await asyncio.gather(
            *(coalescer.submit([i, i, i]) for i in range(6)), coalescer.submit(list(range(9)))
        )

    asyncio.run(run())
    assert all(len(c) <= 5 or len(c) == 9 for c in recorder.calls)
    assert sorted(len(c) for c in recorder.calls).count(9) == 1


def test_a_failed_call_fails_every_submission_it_carried_and_the_next_call_still_runs() -> None:
    recorder = Recorder(fail=RuntimeError("store down"))

    async def run() -> None:
        coalescer = Coalescer(recorder, max_items=100)
        results = await asyncio.gather(*(coalescer.submit([i]) for i in range(5)), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) and str(r) == "store down" for r in results)
        recorder.fail = None
        assert await coalescer.submit([7]) == [70]

    asyncio.run(run())


def test_in_flight_calls_are_bounded() -> None:
    active, peak = 0, 0

    async def call(items: list[int]) -> list[int]:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return items

    async def run() -> None:
        coalescer = Coalescer(call, max_items=1, max_in_flight=2)
        assert await asyncio.gather(*(coalescer.submit([i]) for i in range(10))) == [[i] for i in range(10)]

    asyncio.run(run())
    assert peak == 2


@pytest.mark.parametrize("max_in_flight", [1, 3])
def test_no_submission_is_left_waiting(max_in_flight: int) -> None:
    async def run() -> None:
        coalescer = Coalescer(Recorder(delay=0.001), max_items=3, max_in_flight=max_in_flight)
        for _ in range(5):
            await asyncio.wait_for(asyncio.gather(*(coalescer.submit([i]) for i in range(17))), timeout=5)

    asyncio.run(run())


def test_a_merge_function_joins_matrices_and_each_caller_gets_its_rows() -> None:
    import numpy as np

    shapes: list[tuple[int, ...]] = []

    async def call(rows: np.ndarray) -> np.ndarray:
        shapes.append(rows.shape)
        await asyncio.sleep(0.01)
        return rows[:, 0] * 2

    async def run() -> list[np.ndarray]:
        coalescer = Coalescer(call, max_items=100, merge=np.concatenate)
        parts = [np.full((i + 1, 3), float(i)) for i in range(6)]
        return await asyncio.gather(*(coalescer.submit(p) for p in parts))

    answers = asyncio.run(run())
    assert [a.tolist() for a in answers] == [[2.0 * i] * (i + 1) for i in range(6)]
    assert len(shapes) < 6 and sum(s[0] for s in shapes) == 21 and all(s[1] == 3 for s in shapes)

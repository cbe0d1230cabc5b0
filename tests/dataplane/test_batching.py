"""The asyncio dynamic batcher, without any model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from pipeline_predictors.batching import BatchingConfig, DynamicBatcher

pytestmark = pytest.mark.dataplane

T = TypeVar("T")


class Recorder:
    """A fake model: records each batch; ``gate`` (when given) holds every batch until set."""

    def __init__(
        self, delay: float = 0.0, fail_on: int | None = None, gate: asyncio.Event | None = None
    ) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.gate = gate
        self.running = 0
        self.most_running = 0

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [i * 10 for i in items]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def test_concurrent_items_run_as_one_batch() -> None:
    rec = Recorder()
    sizes: list[int] = []

    async def main() -> list[int]:
        b = DynamicBatcher(rec, BatchingConfig(8, 0.05), on_batch=sizes.append)
        out = await asyncio.gather(*(b.submit(i) for i in range(5)))
        await b.close()
        return list(out)

    assert run(main()) == [0, 10, 20, 30, 40]
    assert rec.batches == [[0, 1, 2, 3, 4]]
    assert sizes == [5]


def test_batches_never_exceed_max_size_and_keep_order() -> None:
    rec = Recorder(delay=0.01)

    async def main() -> list[int]:
        b = DynamicBatcher(rec, BatchingConfig(4, 0.05))
        out = await b.submit_many(list(range(10)))
        await b.close()
        return out

    assert run(main()) == [i * 10 for i in range(10)]
    assert all(len(batch) <= 4 for batch in rec.batches)
    assert [i for batch in rec.batches for i in batch] == list(range(10))


def test_items_outside_the_window_run_separately() -> None:
    rec = Recorder()

    async def main() -> None:
        b = DynamicBatcher(rec, BatchingConfig(8, 0.01))
        await b.submit(1)
        await asyncio.sleep(0.05)
        await b.submit(2)
        await b.close()

    run(main())
    assert rec.batches == [[1], [2]]


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the event loop until ``condition`` holds (the test's timeout bounds it)."""
    while not condition():
        await asyncio.sleep(0.001)


def test_an_idle_model_runs_a_lone_item_at_once() -> None:
    """No waiting for company when nothing runs: a window of a minute is never waited out."""
    rec = Recorder()

    async def main() -> int:
        b = DynamicBatcher(rec, BatchingConfig(32, 60.0))
        value = await b.submit(7)
        await b.close()
        return value

    assert run(main()) == 70
    assert rec.batches == [[7]]


def test_items_arriving_during_a_pass_form_the_next_batch() -> None:
    async def main() -> Recorder:
        gate = asyncio.Event()
        rec = Recorder(gate=gate)
        b = DynamicBatcher(rec, BatchingConfig(32, 60.0))
        first = asyncio.create_task(b.submit(0))
        await until(lambda: len(rec.batches) == 1)  # the model is busy with [0]
        rest = [asyncio.create_task(b.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.02)
        assert rec.batches == [[0]], "a batch was dispatched before the model was free"
        gate.set()  # the pass ends: everything that queued meanwhile goes at once
        assert await asyncio.gather(first, *rest) == [0, 10, 20, 30, 40, 50]
        await b.close()
        return rec

    rec = run(main())
    assert rec.batches == [[0], [1, 2, 3, 4, 5]]


def test_the_window_bounds_how_long_a_batch_forms_while_the_model_is_busy() -> None:
    """Past the window, the forming batch is handed over to run next; later items form
    another, and no more than two batches are ever in flight."""

    async def main() -> Recorder:
        gate = asyncio.Event()
        rec = Recorder(gate=gate)
        b = DynamicBatcher(rec, BatchingConfig(32, 0.01))
        tasks = [asyncio.create_task(b.submit(0))]
        await until(lambda: len(rec.batches) == 1)
        tasks += [asyncio.create_task(b.submit(i)) for i in (1, 2)]
        await until(lambda: len(rec.batches) == 2)  # handed over after 10 ms, not at gate
        tasks += [asyncio.create_task(b.submit(i)) for i in (3, 4)]
        await asyncio.sleep(0.05)
        assert len(rec.batches) == 2, "a third batch went in flight"
        gate.set()
        assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40]
        await b.close()
        return rec

    rec = run(main())
    assert rec.batches == [[0], [1, 2], [3, 4]]
    assert rec.most_running == 2


def test_a_full_batch_is_handed_over_without_waiting_for_the_window() -> None:
    async def main() -> Recorder:
        gate = asyncio.Event()
        rec = Recorder(gate=gate)
        b = DynamicBatcher(rec, BatchingConfig(3, 60.0))
        tasks = [asyncio.create_task(b.submit(0))]
        await until(lambda: len(rec.batches) == 1)
        tasks += [asyncio.create_task(b.submit(i)) for i in range(1, 4)]
        await until(lambda: len(rec.batches) == 2)  # full while [0] runs: handed over
        gate.set()
        await asyncio.gather(*tasks)
        await b.close()
        return rec

    assert run(main()).batches == [[0], [1, 2, 3]]


def test_callers_of_a_batch_that_just_ended_are_waited_for_up_to_the_window() -> None:
    """Three callers answered together come back one by one: their next items form one
    batch (a closed loop at concurrency 3), not one batch each."""

    async def caller(b: DynamicBatcher[int, int], first: int, pause: float) -> list[int]:
        got = [await b.submit(first)]
        await asyncio.sleep(pause)  # the round trip back to the caller and again
        got.append(await b.submit(first + 10))
        return got

    async def main() -> Recorder:
        rec = Recorder()
        b = DynamicBatcher(rec, BatchingConfig(8, 5.0))
        got = await asyncio.gather(*(caller(b, i, 0.01 * i) for i in range(3)))
        assert got == [[0, 100], [10, 110], [20, 120]]
        await b.close()
        return rec

    assert run(main()).batches == [[0, 1, 2], [10, 11, 12]]


def test_a_lone_caller_after_a_pause_goes_at_once() -> None:
    async def main() -> Recorder:
        rec = Recorder()
        b = DynamicBatcher(rec, BatchingConfig(8, 0.05))
        await asyncio.gather(*(b.submit(i) for i in range(3)))
        await asyncio.sleep(0.1)  # longer than the window: nobody is on the way back
        await b.submit(7)
        await b.close()
        return rec

    assert run(main()).batches == [[0, 1, 2], [7]]


def test_one_callers_items_count_as_one_caller() -> None:
    """A single client sending requests of varying size never waits for itself."""

    async def main() -> Recorder:
        rec = Recorder()
        b = DynamicBatcher(rec, BatchingConfig(8, 60.0))
        await b.submit_many([1, 2, 3])
        await b.submit_many([4])
        await b.close()
        return rec

    assert run(main()).batches == [[1, 2, 3], [4]]


def test_latency_zero_takes_only_what_is_queued() -> None:
    rec = Recorder(delay=0.02)

    async def main() -> None:
        b = DynamicBatcher(rec, BatchingConfig(8, 0.0))
        first = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.005)  # the first batch is running now
        await asyncio.gather(first, *(b.submit(i) for i in range(1, 4)))
        await b.close()

    run(main())
    assert rec.batches == [[0], [1, 2, 3]]


def test_max_batch_size_one_disables_batching() -> None:
    rec = Recorder()

    async def main() -> None:
        b = DynamicBatcher(rec, BatchingConfig(1, 0.05))
        await asyncio.gather(*(b.submit(i) for i in range(3)))
        await b.close()

    run(main())
    assert rec.batches == [[0], [1], [2]]
    assert not BatchingConfig(1, 0.05).enabled


def test_a_failed_batch_fails_its_items_and_the_batcher_goes_on() -> None:
    rec = Recorder(fail_on=2)

    async def main() -> tuple[list[object], int]:
        b = DynamicBatcher(rec, BatchingConfig(8, 0.02))
        results = await asyncio.gather(*(b.submit(i) for i in range(3)), return_exceptions=True)
        after = await b.submit(5)
        await b.close()
        return list(results), after

    results, after = run(main())
    assert all(isinstance(r, ValueError) and "bad item 2" in str(r) for r in results)
    assert after == 50


def test_a_cancelled_caller_does_not_break_the_batch() -> None:
    rec = Recorder(delay=0.01)

    async def main() -> int:
        b = DynamicBatcher(rec, BatchingConfig(8, 0.03))
        doomed = asyncio.create_task(b.submit(1))
        kept = asyncio.create_task(b.submit(2))
        await asyncio.sleep(0)
        doomed.cancel()
        value = await kept
        await b.close()
        return value

    assert run(main()) == 20


@pytest.mark.parametrize(("size", "latency"), [(0, 0.01), (4, -1.0)])
def test_config_rejects_nonsense(size: int, latency: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        BatchingConfig(size, latency)

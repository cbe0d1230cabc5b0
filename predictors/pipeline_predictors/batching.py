"""Dynamic batching on asyncio: items submitted within a time window run as one batch.

The batcher knows nothing of models. ``submit(item)`` queues one item and waits for its
result; a single worker task takes the first queued item, then keeps collecting until the
batch holds ``max_batch_size`` items or ``max_latency_s`` has passed since that first item
arrived, and hands the whole batch to ``run_batch``. While a batch runs, new items queue up
and form the next one, so under load batches fill without waiting at all.
``max_latency_s = 0`` batches only what is already queued; ``max_batch_size = 1`` turns
batching off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class BatchingConfig:
    """How large a batch may grow and how long its first item may wait for company."""

    max_batch_size: int = 32
    max_latency_s: float = 0.005

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_latency_s < 0:
            raise ValueError(f"max_latency_s must be >= 0, got {self.max_latency_s}")

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R] = field(repr=False)


class DynamicBatcher(Generic[T, R]):
    """Groups concurrent ``submit`` calls into calls of ``run_batch``.

    ``run_batch`` gets the items in arrival order and must return one result per item, in
    the same order. If it raises, every item of that batch gets the exception. ``on_batch``
    is called with each batch's size before it runs (for metrics).
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Awaitable[Sequence[R]]],
        config: BatchingConfig,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.config = config
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending[T, R]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: T) -> R:
        """Queue one item and wait for its result."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            self._queue = asyncio.Queue()
            self._loop = loop
            self._worker = loop.create_task(self._work(), name="dynamic-batcher")
        assert self._queue is not None
        future: asyncio.Future[R] = loop.create_future()
        self._queue.put_nowait(_Pending(item, future))
        return await future

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """Queue several items (one request's instances) and wait for all their results."""
        return list(await asyncio.gather(*(self.submit(item) for item in items)))

    async def close(self) -> None:
        """Stop the worker; items still queued are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait().future.cancel()

    async def _collect(self, queue: asyncio.Queue[_Pending[T, R]]) -> list[_Pending[T, R]]:
        batch = [await queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.max_latency_s
        while len(batch) < self.config.max_batch_size:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _work(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [p for p in await self._collect(queue) if not p.future.done()]
            if not batch:
                continue
            if self._on_batch is not None:
                self._on_batch(len(batch))
            try:
                results = await self._run_batch([p.item for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"run_batch returned {len(results)} results for {len(batch)} items"
                    )
            except asyncio.CancelledError:
                for p in batch:
                    p.future.cancel()
                raise
            except Exception as exc:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)

"""Adaptive dynamic batching on asyncio: a batch forms while the model is busy, never idly.

The batcher knows nothing of models. ``submit(item)`` (or ``submit_many`` for one caller's
items) queues items and waits for their results; a single worker task groups queued items
into batches and hands each to ``run_batch``. A batch is dispatched:

- at once when the model is idle (no batch in flight): a lone request never waits for
  company, so batching costs nothing at low load. One case is not idleness but a pause: when
  a batch of several callers ended less than ``max_latency_s`` ago, those callers are on their
  way back (a client that got its answer sends its next request), so the new batch waits until
  as many callers are in it, or its first item has waited ``max_latency_s``;
- while a batch runs, when the forming batch is full, when the running batch ends, or when the
  forming batch's first item has waited ``max_latency_s``, whichever comes first.

The window is thus only an upper bound on how long a batch keeps forming, never a wait imposed
on an idle model. At most two batches are in flight: the one running and the next one, handed
over early (full, or its window has passed) so that a serial runner (one forward-pass thread)
starts it the moment the running one ends. Further items keep forming the batch after that.
Under load, batches therefore grow to what arrives during one forward pass, without any idle
gap. ``max_latency_s = 0`` hands over whatever is queued as soon as a slot is free;
``max_batch_size = 1`` turns batching off.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_IN_FLIGHT = 2  # the running batch and the one handed over to run right after it


@dataclass(frozen=True)
class BatchingConfig:
    """How large a batch may grow and how long it may keep forming while the model is busy."""

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
    arrived: float
    caller: object  # the submit or submit_many call the item came with


class DynamicBatcher(Generic[T, R]):
    """Groups concurrent ``submit`` calls into calls of ``run_batch``.

    ``run_batch`` gets the items in arrival order and must return one result per item, in
    the same order. If it raises, every item of that batch gets the exception. Up to two calls
    of ``run_batch`` may be pending at once (see the module docstring); a runner that must
    not overlap serializes them itself, as the torch predictors' single forward thread does.
    ``on_batch`` is called with each batch's size when it is dispatched (for metrics).
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
        self._queue: deque[_Pending[T, R]] = deque()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The callers of the batch that ended last, and when it ended.
        self._last_callers = 0
        self._last_end = -math.inf

    def _enqueue(self, item: T, caller: object) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            self._queue = deque()
            self._in_flight = set()
            self._wakeup = asyncio.Event()
            self._loop = loop
            self._worker = loop.create_task(self._work(), name="dynamic-batcher")
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append(_Pending(item, future, loop.time(), caller))
        self._wakeup.set()
        return future

    async def submit(self, item: T) -> R:
        """Queue one item and wait for its result."""
        return await self._enqueue(item, object())

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """Queue one caller's items (one request's instances) and wait for all their results."""
        caller = object()
        return list(await asyncio.gather(*(self._enqueue(item, caller) for item in items)))

    async def close(self) -> None:
        """Stop the worker; batches in flight and items still queued are cancelled."""
        tasks = [t for t in (self._worker, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._worker = None
        while self._queue:
            self._queue.popleft().future.cancel()

    def _ready(self, batch: list[_Pending[T, R]], now: float) -> bool:
        """Whether to dispatch ``batch`` now (see the module docstring)."""
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            return False
        window = self.config.max_latency_s
        if len(batch) >= self.config.max_batch_size or now >= batch[0].arrived + window:
            return True
        if self._in_flight:
            return False
        returning = self._last_callers if now < self._last_end + window else 1
        return len({p.caller for p in batch}) >= returning

    async def _collect(self) -> list[_Pending[T, R]]:
        loop = asyncio.get_running_loop()
        batch: list[_Pending[T, R]] = []
        while True:
            while self._queue and len(batch) < self.config.max_batch_size:
                pending = self._queue.popleft()
                if not pending.future.done():  # skip callers that were cancelled
                    batch.append(pending)
            if batch and self._ready(batch, loop.time()):
                return batch
            # Wait for an item, the end of a batch in flight, or the end of the window.
            self._wakeup.clear()
            timer = None
            if batch and len(self._in_flight) < MAX_IN_FLIGHT:
                # Not full and not yet due (else it would have been dispatched).
                timer = loop.call_at(batch[0].arrived + self.config.max_latency_s, self._wakeup.set)
            try:
                await self._wakeup.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    async def _run(self, batch: list[_Pending[T, R]]) -> None:
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
            return
        self._last_callers = len({p.caller for p in batch})
        self._last_end = asyncio.get_running_loop().time()
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wakeup.set()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if self._on_batch is not None:
                self._on_batch(len(batch))
            task = loop.create_task(self._run(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)


def length_buckets(lengths: Sequence[int], pass_cost: float) -> list[list[int]]:
    """Split a batch into groups of similar length, each padded and run on its own.

    A forward pass is costed as ``pass_cost`` (its fixed cost, in token positions) plus one
    per padded position; the split minimizes the total over the groups (an exact dynamic
    program over the rows sorted by length). One long input thus no longer pads a whole batch
    to its length once splitting it off is cheaper than the padding. Returns lists of indices
    into ``lengths``, shortest group first; ``pass_cost = inf`` never splits.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    sizes = [lengths[i] for i in order]
    best = [0.0] + [math.inf] * len(order)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(end):
            cost = best[start] + pass_cost + (end - start) * sizes[end - 1]
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups: list[list[int]] = []
    end = len(order)
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]

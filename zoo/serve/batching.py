"""Dynamic batching: requests for one model queue up (bounded), and one loop runs them in batches off the event loop.

The first request of a batch waits at most ``max_wait`` for others, up to ``max_batch``; while the model's sessions
are all busy, the next requests gather in the queue, so under load batches fill without waiting at all. Each session
(an instance) has its own thread and takes the next batch when it is free; decoding and preprocessing run on the
shared worker pool at the same time, so they overlap inference. A full queue refuses at once (503 with
``Retry-After``): memory stays bounded however many clients push.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zoo.errors import RequestError


class Batcher:
    """One model's queue and batching loop; :meth:`submit` is awaited by each request's handler."""

    def __init__(self, name: str, runs: list[Callable[[list[Any]], list[Any]]], *, max_batch: int, max_wait: float,
                 queue: int, retry_after: int, on_batch: Callable[[int], None] | None = None):  # fmt: skip
        self.name = name
        self.runs = runs  # one per session, blocking: a list of inputs → a list of outputs, same order
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait)
        self.retry_after = retry_after
        self.on_batch = on_batch
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue(maxsize=max(1, queue))
        self.threads = ThreadPoolExecutor(len(runs), thread_name_prefix=f"zoo-infer-{name}")
        self.task: asyncio.Task[None] | None = None
        self.running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(), name=f"zoo-batcher-{self.name}")

    async def stop(self) -> None:
        """Finish what is queued, then stop (uvicorn has already waited for in-flight requests)."""
        while not self.queue.empty() or self.running:
            await asyncio.sleep(0.01)
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.threads.shutdown(wait=True)

    def depth(self) -> int:
        return self.queue.qsize()

    async def submit(self, item: Any) -> Any:
        """The output for ``item``; a 503 RequestError at once when the queue is full."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((item, future))
        except asyncio.QueueFull:
            raise RequestError(503, f"model '{self.name}' has {self.queue.maxsize} requests waiting already; "
                                    f"retry after {self.retry_after} s",
                               {"retry-after": str(self.retry_after)}) from None  # fmt: skip
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        free: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(self.runs)):
            free.put_nowait(i)
        while True:
            session = await free.get()  # batches are gathered only when a session can take one
            batch = [await self.queue.get()]
            if self.max_batch > 1 and self.max_wait > 0 and self.queue.qsize() < self.max_batch - 1:
                deadline = loop.time() + self.max_wait
                while self.queue.qsize() < self.max_batch - 1 and loop.time() < deadline:
                    if batch[0][1].done():  # the request that opened the batch timed out: open a new one
                        break
                    await asyncio.sleep(min(0.001, self.max_wait))
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            batch = [(item, future) for item, future in batch if not future.done()]  # timed out or gone
            if not batch:
                free.put_nowait(session)
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            task = loop.create_task(self._infer(session, batch))
            self.running.add(task)
            task.add_done_callback(lambda t, s=session: (self.running.discard(t), free.put_nowait(s)))

    async def _infer(self, session: int, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self.threads, self.runs[session], [item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - each waiting request gets the error as its answer
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), output in zip(batch, outputs, strict=True):
            if not future.done():
                future.set_result(output)

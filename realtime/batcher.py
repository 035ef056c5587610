"""One engine, many callers: gathers the frames that are due from every session into one
`engine.generate` call, on the batcher's own inference thread, within their deadlines.

A request that would finish after its deadline (by the measured time of a batch that size) is
answered `None` at once: the caller passes the frame through instead of queueing it. The queue
is bounded; when it is full the request is also answered `None`. An engine that raises fails
only the requests of that batch (`InferenceError`); the next batch runs normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from export.engine import Engine, FloatArray, ReferenceFeatures, stack_features
from realtime.frames import NS_PER_MS


class InferenceError(RuntimeError):
    """The engine failed on a batch holding this request."""


@dataclass(frozen=True)
class BatcherConfig:
    max_batch: int = 8
    queue_size: int = 64
    gather_ms: float = 3.0  # with several sessions, wait this long at most for more frames
    ema: float = 0.2  # weight of the newest measurement in the per-batch-size time estimate


@dataclass
class _Request:
    features: ReferenceFeatures
    frame: FloatArray  # (3, S, S) in [0, 1]
    mel: FloatArray  # (1, n_mels, W)
    deadline_ns: int  # 0: none
    future: asyncio.Future[FloatArray | None]


class InferenceBatcher:
    def __init__(self, engine: Engine, cfg: BatcherConfig = BatcherConfig()) -> None:
        self.engine = engine
        self.cfg = cfg
        self._queue: asyncio.Queue[_Request] = asyncio.Queue(maxsize=cfg.queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stablesync-infer")
        self._task: asyncio.Task[None] | None = None
        self._batch_ms: dict[int, float] = {}
        self.clients = 0  # sessions currently submitting (a hint for gathering)
        self.batches_run = 0
        self.items_run = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stablesync-batcher")

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, timeout_s)
            self._task = None
        while not self._queue.empty():
            req = self._queue.get_nowait()
            if not req.future.done():
                req.future.set_result(None)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def estimate_ms(self, batch: int = 1) -> float:
        """Expected time of a batch of this size (measured; scaled from the nearest size seen)."""
        if batch in self._batch_ms:
            return self._batch_ms[batch]
        if not self._batch_ms:
            return 30.0
        size, ms = min(self._batch_ms.items(), key=lambda kv: abs(kv[0] - batch))
        return ms * batch / size

    async def warmup(self) -> None:
        """One reference and one frame through the engine (first runs are slow: graph set-up),
        which also seeds the time estimate of a batch of one."""
        if self.batches_run:
            return
        m = self.engine.manifest
        image = np.full((1, 3, m.image_size, m.image_size), 0.5, dtype=np.float32)
        mel = np.full((1, 1, m.mel.n_mels, m.window_frames), m.mel.silence_value, dtype=np.float32)
        loop = asyncio.get_running_loop()
        features = await self.encode_reference(image)
        for _ in range(2):
            t0 = time.perf_counter()
            await loop.run_in_executor(self._executor, self.engine.generate, features, image, mel)
            self._batch_ms[1] = (time.perf_counter() - t0) * 1000.0
        self.batches_run += 1

    async def encode_reference(self, images: FloatArray) -> ReferenceFeatures:
        """(B, 3, S, S) crops in [0, 1] -> features, on the inference thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.engine.encode_reference, images)

    def submit(
        self, features: ReferenceFeatures, frame: FloatArray, mel: FloatArray, deadline_ns: int = 0
    ) -> asyncio.Future[FloatArray | None]:
        """Queues one frame; the future gives its (3, S, S) generated crop, or None when it could
        not be done in time (or the queue is full)."""
        future: asyncio.Future[FloatArray | None] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Request(features, frame, mel, deadline_ns, future))
        except asyncio.QueueFull:
            future.set_result(None)
        return future

    async def _gather(self) -> list[_Request]:
        batch = [await self._queue.get()]
        while len(batch) < self.cfg.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            if self.clients <= len(batch):
                break
            deadlines = [r.deadline_ns for r in batch if r.deadline_ns]
            slack_ms = self.cfg.gather_ms
            if deadlines:
                now = time.monotonic_ns()
                slack_ms = min(
                    slack_ms, (min(deadlines) - now) / NS_PER_MS - self.estimate_ms(len(batch) + 1)
                )
            if slack_ms <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), slack_ms / 1000.0))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            now = time.monotonic_ns()
            live: list[_Request] = []
            for req in batch:
                if req.future.done():  # the caller gave up (cancelled)
                    continue
                expected_end = now + int(self.estimate_ms(len(batch)) * NS_PER_MS)
                if req.deadline_ns and expected_end > req.deadline_ns:
                    req.future.set_result(None)
                else:
                    live.append(req)
            if not live:
                continue
            features = live[0].features if len(live) == 1 else stack_features([r.features for r in live])
            frames = np.stack([r.frame for r in live]).astype(np.float32, copy=False)
            mels = np.stack([r.mel for r in live]).astype(np.float32, copy=False)
            t0 = time.perf_counter()
            try:
                out = await loop.run_in_executor(self._executor, self.engine.generate, features, frames, mels)
            except Exception as exc:  # the engine failed: fail this batch only
                for req in live:
                    if not req.future.done():
                        req.future.set_exception(InferenceError(f"{type(exc).__name__}: {exc}"))
                continue
            ms = (time.perf_counter() - t0) * 1000.0
            n = len(live)
            old = self._batch_ms.get(n)
            self._batch_ms[n] = ms if old is None else (1 - self.cfg.ema) * old + self.cfg.ema * ms
            self.batches_run += 1
            self.items_run += n
            for i, req in enumerate(live):
                if not req.future.done():
                    req.future.set_result(out[i])

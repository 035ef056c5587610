"""One engine, many callers: gathers the frames that are due from every session into one
`engine.generate` call, on the batcher's own inference threads, within their deadlines.

`BatcherConfig.workers` batches run at once, each on its own thread (onnxruntime's CPU sessions
take concurrent calls; open the engine with one intra-op thread per worker): with two sessions on
two cores, one session's frame no longer waits behind the other's, and single-threaded calls do
not stall on a sibling thread the scheduler has taken away. A worker leaves the next frame to a
free worker; when none is free it takes what is queued as one batch, so a backlog still runs
batched. Engines that are not thread-safe (TensorRT contexts, CUDA graphs) keep one worker.

A request that would finish after its deadline (by the expected time of a batch that size,
`BatchTimes`) is answered `None` at once: the caller passes the frame through instead of
queueing it. The queue is bounded; when it is full the request is also answered `None`. An
engine that raises fails only the requests of that batch (`InferenceError`); the next batch
runs normally. Time is read from an injectable `Clock` (`SystemClock` by default).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from stablesync.export.engine import Engine, FloatArray, ReferenceFeatures, stack_features
from stablesync.realtime.pipeline.clock import Clock, SystemClock
from stablesync.realtime.pipeline.frames import NS_PER_MS
from stablesync.realtime.pipeline.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class InferenceError(RuntimeError):
    """The engine failed on a batch holding this request."""


@dataclass(frozen=True)
class BatcherConfig:
    max_batch: int = 8
    queue_size: int = 64
    gather_ms: float = 3.0  # with several sessions, wait this long at most for more frames
    ema: float = 0.2  # weight of the newest measurement in the per-batch-size time estimate
    # while no batch of a size runs, its estimate's excess over the fastest such batch halves
    # every this many ms (see BatchTimes)
    decay_half_life_ms: float = 200.0
    default_ms: float = 30.0  # the estimate before anything was measured
    workers: int = 1  # batches run at once, each on its own inference thread


@dataclass
class _Measured:
    ms: float  # moving average of the measured times
    fastest_ms: float
    at_ns: int  # when last measured


class BatchTimes:
    """Expected time of a batch, per batch size: a moving average of the measured times which,
    while no batch of that size runs, decays toward the fastest one measured. One slow batch
    (a stall: the machine swapping, another program starting) raises the estimate above every
    frame's budget; frames judged late by it never reach the engine, so without the decay no
    new measurement would ever bring it down again. With it, the estimate falls back within a
    few half-lives of the stall's end, the next frames run, and their measurements take over."""

    def __init__(self, ema: float, half_life_ms: float, default_ms: float) -> None:
        self.ema, self.half_life_ms, self.default_ms = ema, half_life_ms, default_ms
        self._sizes: dict[int, _Measured] = {}

    def _current_ms(self, m: _Measured, now_ns: int) -> float:
        age_ms = max(0.0, (now_ns - m.at_ns) / NS_PER_MS)
        excess = max(0.0, m.ms - m.fastest_ms)
        return m.fastest_ms + excess * 0.5 ** (age_ms / self.half_life_ms)

    def estimate_ms(self, batch: int, now_ns: int) -> float:
        """Expected time of a batch of this size (scaled from the nearest size measured)."""
        if batch in self._sizes:
            return self._current_ms(self._sizes[batch], now_ns)
        if not self._sizes:
            return self.default_ms
        size, m = min(self._sizes.items(), key=lambda kv: abs(kv[0] - batch))
        return self._current_ms(m, now_ns) * batch / size

    def record(self, batch: int, ms: float, now_ns: int, replace: bool = False) -> None:
        """A batch of this size took `ms`, ending at `now_ns`; `replace` drops the history."""
        m = self._sizes.get(batch)
        if m is None or replace:
            self._sizes[batch] = _Measured(ms, ms, now_ns)
            return
        m.ms = (1 - self.ema) * self._current_ms(m, now_ns) + self.ema * ms
        m.fastest_ms = min(m.fastest_ms, ms)
        m.at_ns = now_ns


@dataclass
class _Request:
    features: ReferenceFeatures
    frame: FloatArray  # (3, S, S) in [0, 1]
    mel: FloatArray  # (1, n_mels, W)
    deadline_ns: int  # 0: none
    future: asyncio.Future[FloatArray | None]


class InferenceBatcher:
    def __init__(
        self, engine: Engine, cfg: BatcherConfig = BatcherConfig(), clock: Clock | None = None
    ) -> None:
        self.engine = engine
        self.cfg = cfg
        self.clock = clock if clock is not None else SystemClock()
        self.times = BatchTimes(cfg.ema, cfg.decay_half_life_ms, cfg.default_ms)
        self._queue: asyncio.Queue[_Request] = asyncio.Queue(maxsize=cfg.queue_size)
        if cfg.workers < 1:
            raise ValueError("BatcherConfig.workers must be at least 1")
        self._executor = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="stablesync-infer")
        self._tasks: list[asyncio.Task[None]] = []
        self._idle_workers = 0  # workers waiting for a first frame
        self._active = 0  # workers gathering or running a batch
        self._freed = asyncio.Event()  # set when a worker finished its batch
        self._clients = 0
        self.batches_run = 0
        self.items_run = 0
        self.refused_late = 0  # requests answered None because the estimate said they would be late

    @property
    def clients(self) -> int:
        """Sessions currently submitting: a hint for gathering, and how many batches may run at once."""
        return self._clients

    @clients.setter
    def clients(self, value: int) -> None:
        self._clients = value
        self._freed.set()  # a waiting worker may now have a place

    async def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._run(), name=f"stablesync-batcher-{i}") for i in range(self.cfg.workers)
            ]

    async def close(self, timeout_s: float = 5.0) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks, timeout_s, log, "inference batcher")
        while not self._queue.empty():
            req = self._queue.get_nowait()
            if not req.future.done():
                req.future.set_result(None)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def estimate_ms(self, batch: int = 1) -> float:
        """Expected time of a batch of this size now (`BatchTimes`)."""
        return self.times.estimate_ms(batch, self.clock.monotonic_ns())

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
        for _ in range(2):  # the second run's time seeds the estimate
            t0 = self.clock.monotonic_ns()
            await loop.run_in_executor(self._executor, self.engine.generate, features, image, mel)
            t1 = self.clock.monotonic_ns()
            self.times.record(1, (t1 - t0) / NS_PER_MS, t1, replace=True)
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
        self._idle_workers += 1
        try:
            batch = [await self._queue.get()]
        finally:
            self._idle_workers -= 1
        while len(batch) < self.cfg.max_batch:
            if self._idle_workers:
                break  # another worker is free: the next frame runs there, at the same time
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())  # a backlog runs as one batch
                continue
            if self.clients <= len(batch) * self.cfg.workers:
                break  # the other sessions' frames go to the other workers
            deadlines = [r.deadline_ns for r in batch if r.deadline_ns]
            slack_ms = self.cfg.gather_ms
            if deadlines:
                now = self.clock.monotonic_ns()
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
        """One worker: waits for a free place (at most one batch per session runs at once, so one
        session's consecutive frames never share the CPU), gathers a batch and runs it."""
        loop = asyncio.get_running_loop()
        while True:
            while self._active >= max(1, self.clients):
                self._freed.clear()
                await self._freed.wait()
            self._active += 1
            try:
                await self._run_batch(await self._gather(), loop)
            finally:
                self._active -= 1
                self._freed.set()

    async def _run_batch(self, batch: list[_Request], loop: asyncio.AbstractEventLoop) -> None:
        now = self.clock.monotonic_ns()
        live: list[_Request] = []
        for req in batch:
            if req.future.done():  # the caller gave up (cancelled)
                continue
            expected_end = now + int(self.estimate_ms(len(batch)) * NS_PER_MS)
            if req.deadline_ns and expected_end > req.deadline_ns:
                self.refused_late += 1
                req.future.set_result(None)
            else:
                live.append(req)
        if not live:
            return
        features = live[0].features if len(live) == 1 else stack_features([r.features for r in live])
        frames = np.stack([r.frame for r in live]).astype(np.float32, copy=False)
        mels = np.stack([r.mel for r in live]).astype(np.float32, copy=False)
        t0 = self.clock.monotonic_ns()
        try:
            out = await loop.run_in_executor(self._executor, self.engine.generate, features, frames, mels)
        except Exception as exc:  # the engine failed: fail this batch only
            for req in live:
                if not req.future.done():
                    req.future.set_exception(InferenceError(f"{type(exc).__name__}: {exc}"))
            return
        t1 = self.clock.monotonic_ns()
        n = len(live)
        self.times.record(n, (t1 - t0) / NS_PER_MS, t1)
        self.batches_run += 1
        self.items_run += n
        for i, req in enumerate(live):
            if not req.future.done():
                req.future.set_result(out[i])

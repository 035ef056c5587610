"""The batcher's parallel inference workers (`BatcherConfig.workers`): two sessions' frames are
generated at the same time, each on its own thread, instead of one after the other or gathered
into one call. The shipped cpu-rt engine runs for real; a barrier that both calls must reach
together proves they overlap (no timing involved)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import numpy as np
import pytest

from stablesync.export.engine import Engine, FloatArray, ReferenceFeatures
from stablesync.realtime.pipeline.batcher import BatcherConfig, InferenceBatcher
from tests.shipped_engine import shipped_cpu_engine

BARRIER_TIMEOUT_S = 5.0


class RendezvousEngine:
    """The real engine; every `generate` after `armed` first waits at `barrier` until as many calls
    as it has parties run at once (BrokenBarrierError after its timeout), and records each call's
    batch size and thread."""

    def __init__(self, inner: Engine) -> None:
        self.inner, self.manifest, self.backend = inner, inner.manifest, inner.backend
        self.barrier = threading.Barrier(1)
        self.armed = False
        self.batch_sizes: list[int] = []
        self.threads: set[int] = set()

    def encode_reference(self, images: FloatArray) -> ReferenceFeatures:
        return self.inner.encode_reference(images)

    def generate(self, features: ReferenceFeatures, frames: FloatArray, mels: FloatArray) -> FloatArray:
        if self.armed:
            self.batch_sizes.append(frames.shape[0])
            self.threads.add(threading.get_ident())
            self.barrier.wait()  # BrokenBarrierError when no other call overlaps this one
        return self.inner.generate(features, frames, mels)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return shipped_cpu_engine()


async def _sessions_started(
    batcher: InferenceBatcher, sessions: int = 2
) -> tuple[ReferenceFeatures, FloatArray, FloatArray]:
    """Warms the batcher up, then counts `sessions` sessions in (as `LipSyncSession.start`
    does: the workers already wait); what `submit` takes for one grey frame."""
    await batcher.warmup()
    batcher.clients = sessions
    m = batcher.engine.manifest
    image = np.full((3, m.image_size, m.image_size), 0.5, dtype=np.float32)
    features = await batcher.encode_reference(image[None])
    mel = np.full((1, m.mel.n_mels, m.window_frames), m.mel.silence_value, dtype=np.float32)
    return features, image, mel


async def _two_sessions_one_frame_each(
    engine: Engine, workers: int, parties: int
) -> tuple[RendezvousEngine, list[object]]:
    """Two sessions' frames submitted together; every engine call waits for `parties` calls."""
    timed = RendezvousEngine(engine)
    timed.barrier = threading.Barrier(parties, timeout=BARRIER_TIMEOUT_S)
    batcher = InferenceBatcher(timed, BatcherConfig(workers=workers, gather_ms=50.0))  # type: ignore[arg-type]
    await batcher.start()
    try:
        features, image, mel = await _sessions_started(batcher)
        timed.armed = True
        futures = [batcher.submit(features, image, mel) for _ in range(2)]
        results = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), BARRIER_TIMEOUT_S * 3
        )
    finally:
        await batcher.close(2.0)
    return timed, list(results)


async def test_two_workers_generate_two_sessions_frames_at_once(engine: Engine) -> None:
    timed, results = await _two_sessions_one_frame_each(engine, workers=2, parties=2)
    assert all(isinstance(r, np.ndarray) for r in results), results
    assert timed.batch_sizes == [1, 1]  # not gathered into one call: one frame per worker
    assert len(timed.threads) == 2


async def test_one_worker_gathers_them_into_one_call(engine: Engine) -> None:
    """The default (one worker, e.g. a GPU engine) still batches the two sessions' frames."""
    timed, results = await _two_sessions_one_frame_each(engine, workers=1, parties=1)
    assert all(isinstance(r, np.ndarray) for r in results), results
    assert timed.batch_sizes == [2]


def test_workers_must_be_positive(engine: Engine) -> None:
    with pytest.raises(ValueError, match="workers"):
        InferenceBatcher(engine, BatcherConfig(workers=0))


async def _until(condition: Callable[[], bool]) -> None:
    """Waits (at most BARRIER_TIMEOUT_S) until the workers have reached the state asked for."""
    for _ in range(int(BARRIER_TIMEOUT_S / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the batcher's workers never got there")


class GatedEngine:
    """The real engine; the first `len(gates)` calls after `armed` each wait for their own gate,
    so the test decides when each worker is busy and when it is free."""

    def __init__(self, inner: Engine, gates: int) -> None:
        self.inner, self.manifest, self.backend = inner, inner.manifest, inner.backend
        self.gates = [threading.Event() for _ in range(gates)]
        self.armed = False
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    def encode_reference(self, images: FloatArray) -> ReferenceFeatures:
        return self.inner.encode_reference(images)

    def generate(self, features: ReferenceFeatures, frames: FloatArray, mels: FloatArray) -> FloatArray:
        if self.armed:
            with self._lock:
                call = len(self.batch_sizes)
                self.batch_sizes.append(frames.shape[0])
            if call < len(self.gates):
                self.gates[call].wait(BARRIER_TIMEOUT_S)
        return self.inner.generate(features, frames, mels)


async def test_a_backlog_runs_as_one_batch_when_no_worker_is_free(engine: Engine) -> None:
    gated = GatedEngine(engine, gates=2)
    batcher = InferenceBatcher(gated, BatcherConfig(workers=2, gather_ms=0.0))  # type: ignore[arg-type]
    await batcher.start()
    try:
        features, image, mel = await _sessions_started(batcher)
        gated.armed = True
        busy = [batcher.submit(features, image, mel) for _ in range(2)]  # one per worker, held
        await _until(lambda: len(gated.batch_sizes) == 2)  # both workers busy
        backlog = [batcher.submit(features, image, mel) for _ in range(3)]  # no worker free
        gated.gates[0].set()  # one worker comes free: it takes the whole backlog
        results = await asyncio.wait_for(asyncio.gather(*busy[:1], *backlog), 30)
        gated.gates[1].set()
        results.append(await asyncio.wait_for(busy[1], 30))
    finally:
        await batcher.close(2.0)
    assert all(isinstance(r, np.ndarray) for r in results)
    assert gated.batch_sizes == [1, 1, 3]


async def test_one_session_never_runs_two_calls_at_once(engine: Engine) -> None:
    """With one session, its next frame waits for the running call (then runs with any backlog
    as one batch) instead of sharing the CPU with it on the second worker."""
    gated = GatedEngine(engine, gates=1)
    batcher = InferenceBatcher(gated, BatcherConfig(workers=2, gather_ms=0.0))  # type: ignore[arg-type]
    await batcher.start()
    try:
        features, image, mel = await _sessions_started(batcher, 1)
        gated.armed = True
        first = batcher.submit(features, image, mel)
        await _until(lambda: len(gated.batch_sizes) == 1)  # the first call runs, held at its gate
        rest = [batcher.submit(features, image, mel) for _ in range(2)]
        for _ in range(50):  # time for a second worker to start a call, were it allowed to
            if len(gated.batch_sizes) > 1:
                break
            await asyncio.sleep(0.01)
        concurrent = len(gated.batch_sizes)
        gated.gates[0].set()
        results = await asyncio.wait_for(asyncio.gather(first, *rest), 30)
    finally:
        await batcher.close(2.0)
    assert concurrent == 1
    assert all(isinstance(r, np.ndarray) for r in results)
    assert gated.batch_sizes == [1, 2]  # the two that waited ran as one batch

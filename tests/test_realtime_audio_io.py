"""Audio in and out through a real PulseAudio server (no sound hardware): the microphone source
records what is played into a null sink; the virtual microphone (`stablesync` source created
with pactl) carries the delayed audio; and the demo process never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from realtime.clock import StreamClock
from realtime.frames import AudioChunk
from realtime.sinks.pulse import PulseVirtualMic, source_names
from realtime.sinks.virtual_mic import AudioDelayLine, VirtualMicConfig, VirtualMicSink
from realtime.sources import MicSource
from stablesync.media import write_wav


def tone(seconds: float, rate: int = 16_000, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.slow
async def test_microphone_source_records_what_is_played(pulse_server: str, tmp_path: Path) -> None:
    import asyncio
    import os

    wav = write_wav(tmp_path / "tone.wav", tone(1.5), 16_000)
    os.environ["PULSE_SOURCE"] = f"{pulse_server}.monitor"  # the null sink's monitor is our "mic"
    got: list[AudioChunk] = []

    async def emit(chunk: AudioChunk) -> None:
        got.append(chunk)

    mic = MicSource("pulse")
    task = asyncio.create_task(mic.run(emit, StreamClock()))
    await asyncio.sleep(0.3)
    player = await asyncio.create_subprocess_exec("paplay", "-d", pulse_server, str(wav))
    await asyncio.wait_for(player.wait(), 10)
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    samples = np.concatenate([c.samples for c in got])
    assert samples.size > 16_000  # more than a second arrived
    assert np.abs(samples).max() > 0.2  # the tone, not silence
    captures = np.array([c.capture_ns for c in got])
    assert np.all(np.diff(captures) > 0)  # stamped in order on the monotonic clock


@pytest.mark.slow
async def test_virtual_microphone_carries_the_delayed_audio(pulse_server: str, tmp_path: Path) -> None:
    import asyncio
    import time

    vmic = PulseVirtualMic()
    vmic.create()
    try:
        assert "stablesync" in source_names()
        recording = tmp_path / "rec.wav"
        rec = await asyncio.create_subprocess_exec(
            "parecord",
            "-d",
            "stablesync",
            "--rate=16000",
            "--channels=1",
            "--file-format=wav",
            str(recording),
        )
        await asyncio.sleep(0.3)
        sink = VirtualMicSink(VirtualMicConfig(pulse_sink=vmic.sink_name))
        line = AudioDelayLine()
        line.device_latency_ns = int(await sink.open() * 1e9)
        start = time.monotonic_ns()
        signal = tone(1.0)
        chunks: asyncio.Queue[AudioChunk | None] = asyncio.Queue()
        for i in range(0, signal.size, 320):
            pts = i * 1_000_000_000 // 16_000
            chunks.put_nowait(AudioChunk(signal[i : i + 320], 16_000, start + pts, pts))
        chunks.put_nowait(None)
        await line.run(chunks.get, lambda: 200_000_000, sink.write)  # 200 ms of video latency to match
        assert line.applied_delay_ns == 200_000_000
        await asyncio.sleep(0.4)
        await sink.close()
        rec.terminate()
        await rec.wait()
    finally:
        vmic.remove()
    assert "stablesync" not in source_names()
    with wave.open(str(recording)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    assert data.size > 16_000 and np.abs(data).max() > 0.2


@pytest.mark.slow
def test_demo_process_never_imports_torch_and_takes_8khz_stereo(
    cpu_rt_export: Path, rt_face_photo: Path, tmp_path: Path
) -> None:
    rate = 8_000
    t = np.arange(int(1.2 * rate)) / rate
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t)], 1) * 0.3
    wav = tmp_path / "speech8k.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((stereo * 32767).astype("<i2").tobytes())
    out, stats = tmp_path / "demo.mp4", tmp_path / "stats.json"
    code = (
        "import sys; from stablesync.cli import main; "
        f"rc = main(['demo', '--weights', {str(cpu_rt_export)!r}, '--face', {str(rt_face_photo)!r}, "
        f"'--audio', {str(wav)!r}, '--out', {str(out)!r}, '--stats-json', {str(stats)!r}, "
        "'--fast', '--quiet']); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(stats.read_text())
    assert data["counts"]["frames_out"] == 30 and data["counts"]["mode_lipsync"] >= 25
    assert out.is_file()


def test_cli_errors_are_one_line(tmp_path: Path, rt_face_photo: Path) -> None:
    corrupt = tmp_path / "bad.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt " + bytes(30))
    missing_weights = tmp_path / "nothing"
    for args in (
        ["demo", "--weights", str(missing_weights), "--out", str(tmp_path / "a.mp4")],
        [
            "run",
            "--face",
            str(rt_face_photo),
            "--audio",
            str(corrupt),
            "--out",
            str(tmp_path / "b.mp4"),
            "--weights",
            str(missing_weights),
        ],
        ["run", "--face", str(rt_face_photo), "--out", str(tmp_path / "c.txt")],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "stablesync", *args], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 2, (args, proc.stderr)
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("stablesync")]
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr

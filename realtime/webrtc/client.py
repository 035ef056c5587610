"""A Python WebRTC client for `stablesync serve`: sends a clip, receives the result, measures.

Used by the tests and `benchmarks/webrtc_sessions.py`, and by hand:
`python -m stablesync.realtime.webrtc.client http://127.0.0.1:8080/ --seconds 10 [--clip PATH] [--json OUT]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fractions
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from stablesync.errors import UserError
from stablesync.realtime.webrtc.clip import (
    SEND_RATE_HZ,
    Clip,
    UInt8Array,
    add_tone_marks,
    draw_mark,
    load_clip,
    read_mark,
    synthetic_clip,
    tone_onset,
)
from stablesync.realtime.webrtc.media import receive_delay_ns, recv_audio, recv_video
from stablesync.realtime.webrtc.stats import STATS_CHANNEL

AUDIO_FRAME_SAMPLES = 960
MARK_WRAP = 4096


class ClipVideoTrack(MediaStreamTrack):  # type: ignore[misc]
    """The clip's frames (looped) like a camera: one every 1/fps s in real time, frames whose time
    passed while the encoder was busy are skipped, pts is the capture time; each frame is marked
    with its index."""

    kind = "video"

    def __init__(self, clip: Clip, start_ns: int) -> None:
        super().__init__()
        self._clip, self._start_ns, self._index = clip, start_ns, 0
        self._period_ns = int(1e9 / clip.fps)
        self.sent_ns: dict[int, int] = {}

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        behind = (time.monotonic_ns() - self._start_ns) // self._period_ns
        self._index = max(self._index, int(behind))
        due_ns = self._start_ns + self._index * self._period_ns
        await asyncio.sleep(max(0.0, (due_ns - time.monotonic_ns()) / 1e9))
        rgb = draw_mark(self._clip.frames[self._index % len(self._clip.frames)], self._index)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self._index * self._period_ns * 90_000 // 1_000_000_000
        frame.time_base = fractions.Fraction(1, 90_000)
        self.sent_ns[self._index % MARK_WRAP] = time.monotonic_ns()
        self._index += 1
        return frame


class ClipAudioTrack(MediaStreamTrack):  # type: ignore[misc]
    """The clip's audio (looped) in 20 ms frames at 48 kHz, paced on the same start as the video."""

    kind = "audio"

    def __init__(self, clip: Clip, start_ns: int) -> None:
        super().__init__()
        self._audio = (np.clip(add_tone_marks(clip.audio), -1, 1) * 32767).astype(np.int16)
        self._start_ns, self._index = start_ns, 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        due_ns = self._start_ns + self._index * 20_000_000
        await asyncio.sleep(max(0.0, (due_ns - time.monotonic_ns()) / 1e9))
        start = self._index * AUDIO_FRAME_SAMPLES % max(1, len(self._audio) - AUDIO_FRAME_SAMPLES)
        chunk = self._audio[start : start + AUDIO_FRAME_SAMPLES]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SEND_RATE_HZ
        frame.pts = self._index * AUDIO_FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, SEND_RATE_HZ)
        self._index += 1
        return frame


@dataclasses.dataclass
class ClientResult:
    video_frames: int = 0
    audio_frames: int = 0
    marked_frames: int = 0
    seconds: float = 0.0
    glass_to_glass_ms: list[float] = dataclasses.field(default_factory=list)
    av_offset_ms: list[float] = dataclasses.field(default_factory=list)  # video minus audio arrival
    stats: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    last_frame: UInt8Array | None = None
    audio_rms: float = 0.0
    error: str | None = None

    @property
    def fps(self) -> float:
        return self.video_frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)), 2) if values else None

        return {
            "video_frames": self.video_frames,
            "audio_frames": self.audio_frames,
            "fps": round(self.fps, 2),
            "glass_to_glass_ms": {q: pct(self.glass_to_glass_ms, int(q[1:])) for q in ("p50", "p95")},
            "av_offset_ms": {"p50": pct(self.av_offset_ms, 50), "n": len(self.av_offset_ms)},
            "server": self.stats[-1] if self.stats else None,
            "error": self.error,
        }


class _Receiver:
    def __init__(self, video_out: ClipVideoTrack, fps: float, result: ClientResult) -> None:
        self._video_out, self._fps, self.result = video_out, fps, result
        self._video_marks: list[tuple[int, int]] = []  # (second k, arrival of frame k*fps)
        self._tones: list[int] = []
        self._in_tone = False
        self._square_sum, self._square_n = 0.0, 0

    async def video(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await recv_video(track)
                now_ns = time.monotonic_ns()
                self.result.video_frames += 1
                rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                self.result.last_frame = rgb
                index = read_mark(rgb)
                if index is None or index not in self._video_out.sent_ns:
                    continue
                self.result.marked_frames += 1
                self.result.glass_to_glass_ms.append((now_ns - self._video_out.sent_ns[index]) / 1e6)
                fps_int = round(self._fps)
                if index % fps_int == 0:
                    self._video_marks.append((index // fps_int, now_ns))
                    self._pair()

    async def audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await recv_audio(track)
                now_ns = time.monotonic_ns()
                self.result.audio_frames += 1
                samples = frame.to_ndarray().astype(np.float32).reshape(-1, len(frame.layout.channels))
                mono = samples.mean(axis=1) / 32768.0
                self._square_sum += float(np.square(mono).sum())
                self._square_n += mono.size
                self.result.audio_rms = (self._square_sum / max(1, self._square_n)) ** 0.5
                onset = tone_onset(mono, frame.sample_rate)
                if onset is not None and not self._in_tone:
                    # aiortc's receiver released this frame a prefetch after it arrived: a player
                    # rendering audio at its own pace would have started it that much earlier
                    arrival_ns = now_ns - receive_delay_ns(frame)
                    self._tones.append(arrival_ns + int(onset * 1e9 / frame.sample_rate))
                    self._pair()
                self._in_tone = onset is not None

    def _pair(self) -> None:
        """Pairs each marked second's video arrival with the nearest tone arrival (< 0.5 s)."""
        while self._video_marks and self._tones:
            _, video_ns = self._video_marks[0]
            tone_ns = min(self._tones, key=lambda t: abs(t - video_ns))
            if abs(tone_ns - video_ns) < 500_000_000:
                self.result.av_offset_ms.append((video_ns - tone_ns) / 1e6)
                self._tones = [t for t in self._tones if t > tone_ns]
                self._video_marks.pop(0)
            elif tone_ns < video_ns:
                self._tones.remove(tone_ns)
            else:
                self._video_marks.pop(0)


async def post_offer(
    url: str, sdp: str, token: str | None = None, timeout_s: float = 15.0, profile: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    offer = {"sdp": sdp, "type": "offer"} | ({"profile": profile} if profile is not None else {})
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http,
        http.post(url.rstrip("/") + "/offer", json=offer, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def run_client(
    url: str,
    clip: Clip,
    seconds: float,
    token: str | None = None,
    settle_s: float = 1.0,
    profile: str | None = None,
) -> ClientResult:
    """Sends `clip` (looped) for `seconds`, receiving, on `profile` (None: the server's
    default); closes the connection cleanly at the end."""
    result = ClientResult()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    start_ns = time.monotonic_ns() + int(settle_s * 1e9)
    video_out = ClipVideoTrack(clip, start_ns)
    receiver = _Receiver(video_out, clip.fps, result)
    tasks: list[asyncio.Task[None]] = []
    channel = pc.createDataChannel(STATS_CHANNEL)
    channel.on("message", lambda m: result.stats.append(json.loads(m)) if isinstance(m, str) else None)

    def on_track(track: MediaStreamTrack) -> None:
        coro = receiver.video(track) if track.kind == "video" else receiver.audio(track)
        tasks.append(asyncio.ensure_future(coro))

    pc.on("track", on_track)
    pc.addTrack(video_out)
    pc.addTrack(ClipAudioTrack(clip, start_ns))
    try:
        await pc.setLocalDescription(await pc.createOffer())
        try:
            status, answer = await post_offer(url, pc.localDescription.sdp, token, profile=profile)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UserError(
                f"{url}: no stablesync server answered ({type(exc).__name__}: {exc}); expected the"
                " address `stablesync serve` printed"
            ) from exc
        if status != 200:
            result.error = f"HTTP {status}: {answer.get('error')}"
            return result
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9) + seconds)
        result.seconds = (time.monotonic_ns() - start_ns) / 1e9
    finally:
        await asyncio.wait_for(pc.close(), timeout=5.0)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
    return result


def read_clip(path: Path) -> Clip:
    """`--clip PATH` -> Clip; a missing or unreadable one is a UserError naming it."""
    expected = (
        "expected a prepared clip folder (frames.npy), a video with sound,"
        " or a face image with speech.wav beside it"
    )
    if not path.exists():
        raise UserError(f"--clip {path}: not found; {expected}")
    try:
        clip = load_clip(path)
    except UserError as exc:
        raise UserError(f"--clip {path}: {exc}; {expected}") from exc
    except Exception as exc:  # numpy, PyAV and OpenCV each raise their own
        raise UserError(f"--clip {path}: cannot read it ({type(exc).__name__}: {exc}); {expected}") from exc
    if len(clip.frames) == 0 or clip.audio.size == 0:
        raise UserError(f"--clip {path}: holds no frames or no sound; {expected}")
    return clip


def main(argv: list[str] | None = None) -> int:
    prog = "python -m stablesync.realtime.webrtc.client"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clip", type=Path, help="clip folder, video file, or face image with speech.wav")
    parser.add_argument("--token")
    parser.add_argument("--profile", help="a profile the server serves (GET /profiles lists them)")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args(argv)
    try:
        clip = read_clip(args.clip) if args.clip else synthetic_clip()
        result = asyncio.run(run_client(args.url, clip, args.seconds, args.token, profile=args.profile))
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    summary = json.dumps(result.summary(), indent=2)
    if args.json:
        args.json.write_text(summary)
    print(summary)
    return 0 if result.error is None else 1


if __name__ == "__main__":
    sys.exit(main())

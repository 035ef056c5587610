"""Pairs each video frame with the mel window at its capture time.

Audio chunks arrive with the monotonic time of their first sample. `MelTimeline` anchors the
stream at the first chunk (mel frame k is centred at `anchor_ns + k / mel_fps`), feeds
`StreamingMel` and keeps the recent mel frames in a ring. The window for a frame captured at
t covers [t + lookahead - window, t + lookahead) (the `mel_window_start` convention of
`stablesync.audio`), so it is complete once the audio up to t + lookahead + n_fft/2 has
arrived: the look-ahead is latency that the pipeline pays on every frame.

The samples feeding the mel are first brought to the training corpus's speech level
(`stablesync.realtime.pipeline.speech_level`): the mouth then opens as much for a quiet
microphone as for a loud one.
Gaps (a capture time later than the samples so far account for) are filled with silence so
the timeline stays on the clock. A chunk stamped earlier than the samples so far account for
moves the anchor back to it: the first chunk's stamp may carry a delay the later ones do not
(it waited behind the connection's start), and an anchor left late would pair every frame with
audio captured after it for the rest of the stream. A silent window is replaced by the exact
silence value so a quiet room keeps the mouth closed and still.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stablesync.audio import FloatArray, MelConfig, StreamingMel, prepare_audio
from stablesync.realtime.pipeline.frames import NS_PER_S, AudioChunk
from stablesync.realtime.pipeline.speech_level import SpeechLevel, SpeechLevelConfig


@dataclass(frozen=True)
class WindowConfig:
    lookahead_ms: float = 80.0
    window_frames: int = 16
    history_s: float = 4.0  # mel frames kept for late frames
    gap_fill_ms: float = 60.0  # a capture-time jump larger than this is filled with silence
    silence_threshold: float = -3.4  # a window whose loudest band-frame mean is below this is silence
    speech_level: SpeechLevelConfig = field(default_factory=SpeechLevelConfig)  # the model's input level


@dataclass(frozen=True)
class MelWindow:
    mel: FloatArray  # (n_mels, window_frames)
    complete: bool  # all of its frames had arrived (False: cut short at the newest audio)
    silent: bool
    evicted: bool = False  # part of it had already left the history ring (audio ran far ahead)


class MelTimeline:
    def __init__(self, cfg: WindowConfig, mel_cfg: MelConfig | None = None) -> None:
        self.cfg = cfg
        self.mel_cfg = mel_cfg = mel_cfg or MelConfig()
        self._stream = StreamingMel(mel_cfg)
        self._level = SpeechLevel(mel_cfg.sample_rate_hz, cfg.speech_level)
        self._anchor_ns: int | None = None
        self._samples_in = 0
        capacity = int(cfg.history_s * mel_cfg.mel_fps) + cfg.window_frames
        self._ring = np.full((mel_cfg.n_mels, capacity), mel_cfg.silence_value, dtype=np.float32)
        self._capacity = capacity

    @property
    def anchored(self) -> bool:
        return self._anchor_ns is not None

    @property
    def frames_available(self) -> int:
        return self._stream.frames_emitted

    def push(self, chunk: AudioChunk) -> None:
        samples = chunk.samples
        if chunk.sample_rate_hz != self.mel_cfg.sample_rate_hz:
            samples = prepare_audio(samples, chunk.sample_rate_hz, self.mel_cfg, name="audio chunk")
        if self._anchor_ns is None:
            self._anchor_ns = chunk.capture_ns
        else:
            expected_ns = self._anchor_ns + self._samples_in * NS_PER_S // self.mel_cfg.sample_rate_hz
            gap_ns = chunk.capture_ns - expected_ns
            if gap_ns > self.cfg.gap_fill_ms * 1e6:
                self._append(np.zeros(gap_ns * self.mel_cfg.sample_rate_hz // NS_PER_S, dtype=np.float32))
            elif gap_ns < 0:  # stamped earlier than the stream so far says: it started earlier
                self._anchor_ns += gap_ns
        self._append(self._level(samples))

    def _append(self, samples: FloatArray) -> None:
        self._samples_in += int(samples.shape[0])
        frames = self._stream.push(samples)
        start = self._stream.frames_emitted - frames.shape[1]
        for k in range(frames.shape[1]):  # a chunk completes only a few frames
            self._ring[:, (start + k) % self._capacity] = frames[:, k]

    def window_start(self, capture_ns: int) -> int:
        """First mel frame of the window for a frame captured at `capture_ns`."""
        if self._anchor_ns is None:
            raise RuntimeError("no audio yet")
        t_s = (capture_ns - self._anchor_ns) / NS_PER_S
        window_s = self.cfg.window_frames / self.mel_cfg.mel_fps
        return round((t_s + self.cfg.lookahead_ms / 1000.0 - window_s) * self.mel_cfg.mel_fps)

    def ready_ns(self, capture_ns: int) -> int:
        """Monotonic time at which the window for `capture_ns` is complete (audio capture time)."""
        if self._anchor_ns is None:
            raise RuntimeError("no audio yet")
        last = self.window_start(capture_ns) + self.cfg.window_frames - 1
        last_sample = last * self.mel_cfg.hop_length + self.mel_cfg.n_fft // 2
        return self._anchor_ns + last_sample * NS_PER_S // self.mel_cfg.sample_rate_hz

    def is_ready(self, capture_ns: int) -> bool:
        return self.window_start(capture_ns) + self.cfg.window_frames <= self.frames_available

    def window(self, capture_ns: int) -> MelWindow:
        """The window for `capture_ns`; when its end has not arrived yet it is shifted back to end
        at the newest mel frame (less look-ahead rather than waiting: the deadline wins)."""
        w = self.cfg.window_frames
        start = self.window_start(capture_ns)
        available = self.frames_available
        complete = start + w <= available
        if not complete:
            start = max(available - w, start - int(self.cfg.lookahead_ms * self.mel_cfg.mel_fps / 1000) - w)
        oldest = max(0, available - self._capacity)
        lo, hi = max(start, oldest), min(start + w, available)
        window = np.full((self.mel_cfg.n_mels, w), self.mel_cfg.silence_value, dtype=np.float32)
        if hi > lo:  # frames outside the ring (before the stream, too old) stay silence
            window[:, lo - start : hi - start] = self._ring[:, np.arange(lo, hi) % self._capacity]
        silent = bool(window.mean(axis=0).max() < self.cfg.silence_threshold)
        if silent:
            window = np.full_like(window, self.mel_cfg.silence_value)
        return MelWindow(mel=window, complete=complete, silent=silent, evicted=oldest > 0 and start < oldest)

"""G_S's fine-tune on the take's pauses (`stablesync.enroll.silent`): which frames count as pauses,
and that the pause frames (with the exact silent window) are what G_S is taught."""

from __future__ import annotations

import numpy as np

from stablesync.audio import MelConfig, mel_window_start
from stablesync.enroll.silent import ClosedRule, PauseRule, closed_frames, pause_frames, rest_frames
from stablesync.train.data import WINDOW_FRAMES, Clip

CFG = MelConfig()
FPS = 25.0
LOOKAHEAD_MS = 80.0


def _clip(seconds: float, quiet_spans_s: list[tuple[float, float]], noise: float = 0.3) -> Clip:
    """Loud speech-like mel (random levels around +1) with room noise (around -3) in the spans."""
    rng = np.random.default_rng(1)
    columns = int(seconds * CFG.mel_fps)
    mel = (1.0 + noise * rng.standard_normal((CFG.n_mels, columns))).astype(np.float32)
    for a, b in quiet_spans_s:
        lo, hi = int(a * CFG.mel_fps), int(b * CFG.mel_fps)
        mel[:, lo:hi] = -3.0 + noise * rng.standard_normal((CFG.n_mels, hi - lo))
    frames = np.zeros((int(seconds * FPS), 8, 8, 3), np.uint8)
    return Clip("take", frames, mel, FPS, {})


def _window_inside(t: int, a: float, b: float) -> bool:
    start = mel_window_start(t, FPS, LOOKAHEAD_MS, WINDOW_FRAMES, CFG)
    return int(a * CFG.mel_fps) <= start and start + WINDOW_FRAMES <= int(b * CFG.mel_fps)


def test_frames_whose_window_lies_in_a_pause_and_no_others() -> None:
    spans = [(1.0, 2.0), (3.0, 3.8)]
    clip = _clip(5.0, spans)
    picked = set(pause_frames(clip, LOOKAHEAD_MS, CFG).tolist())
    inside = {t for t in range(clip.n_frames) if any(_window_inside(t, a, b) for a, b in spans)}
    # every picked frame's window is all room noise; all but the trimmed ends of each run are picked
    assert picked <= inside
    assert len(picked) >= len(inside) - 2 * len(spans) * PauseRule().trim


def test_a_short_quiet_gap_is_not_a_pause() -> None:
    # 0.3 s of quiet: a window of 200 ms fits in it for about 2-3 frames, fewer than min_run
    clip = _clip(4.0, [(2.0, 2.3)])
    assert pause_frames(clip, LOOKAHEAD_MS, CFG).size == 0


def test_speech_throughout_gives_no_pause_frames_from_its_quietest_words() -> None:
    # levels vary (quiet and loud words) but never drop to the room's noise: the quietest 5%
    # is speech, and only runs well under the span count
    rng = np.random.default_rng(2)
    clip = _clip(6.0, [])
    clip.mel[:] += rng.uniform(-0.3, 0.3, size=(1, clip.mel.shape[1])).astype(np.float32)
    assert pause_frames(clip, LOOKAHEAD_MS, CFG).size < PauseRule().min_frames


def test_digital_silence_elsewhere_does_not_hide_the_room_noise_pauses() -> None:
    # a file that starts with digital silence (the floor of the scale) and pauses in room noise
    clip = _clip(5.0, [(1.5, 2.5)])
    clip.mel[:, : int(0.5 * CFG.mel_fps)] = CFG.silence_value
    picked = set(pause_frames(clip, LOOKAHEAD_MS, CFG).tolist())
    inside = {t for t in range(clip.n_frames) if _window_inside(t, 1.5, 2.5)}
    assert len(inside) >= 10 and len(inside - picked) <= 2 * PauseRule().trim


def _mesh(openings: list[float]) -> np.ndarray:
    """Face mesh points whose inner-lip gap is `opening` eye distances (eyes 40 px apart)."""
    from stablesync.face.landmarks import LEFT_EYE, LOWER_LIP_INNER, RIGHT_EYE, UPPER_LIP_INNER

    meshes = np.zeros((len(openings), 468, 2), np.float32)
    for mesh, opening in zip(meshes, openings, strict=True):
        mesh[list(RIGHT_EYE)] = (30.0, 40.0)
        mesh[list(LEFT_EYE)] = (70.0, 40.0)
        mesh[UPPER_LIP_INNER] = (50.0, 80.0)
        mesh[LOWER_LIP_INNER] = (50.0, 80.0 + 40.0 * opening)
    return meshes


def test_closed_lips_stand_in_when_the_take_never_pauses() -> None:
    clip = _clip(2.0, [])  # 50 frames of speech, no pause
    openings = [0.02 if t % 5 == 0 else 0.15 for t in range(clip.n_frames)]  # a closure every 5th
    frames, kind = rest_frames(clip, _mesh(openings), LOOKAHEAD_MS, CFG)
    assert kind == "frames with closed lips" and frames.tolist() == list(range(0, clip.n_frames, 5))
    assert closed_frames(_mesh([0.04, 0.06, 0.3])).tolist() == [0]
    # a take with pauses learns from its pauses; one with neither keeps the shipped G_S
    paused = _clip(5.0, [(1.0, 2.0)])
    assert rest_frames(paused, _mesh([0.2] * paused.n_frames), LOOKAHEAD_MS, CFG)[1] == "pause frames"
    few = [0.02 if t < ClosedRule().min_frames - 1 else 0.15 for t in range(clip.n_frames)]
    assert rest_frames(clip, _mesh(few), LOOKAHEAD_MS, CFG)[1] == ""
    assert rest_frames(clip, None, LOOKAHEAD_MS, CFG)[1] == ""

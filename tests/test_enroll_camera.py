"""`stablesync enroll NAME --camera ... --mic ...` (issue 16): the guided take, recorded end to
end through the real sources: the camera source reading a video file (what `--camera PATH`
opens), the microphone source recording a real PulseAudio server's sink monitor while paplay
plays speech into it. A usable take is handed to enroll as `--video`/`--audio`; unusable ones
are refused in one line."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import stablesync
from stablesync.cli import main as cli
from stablesync.enroll.script import LINES, PAUSE, Script, syllables
from stablesync.errors import UserError
from stablesync.media import Mp4Writer, read_audio, write_wav
from tests.test_preview import Xvfb, _wait_for, _xdotool, xvfb  # noqa: F401  (xvfb: a fixture)

DEMO = Path(stablesync.__file__).parent / "assets" / "demo"


def camera_file(path: Path, seconds: float, change: str = "none") -> Path:
    """The demo face drifting over grey (as a webcam would show it), `change`d: blank, dark, two."""
    face = cv2.cvtColor(cv2.imread(str(DEMO / "face.png")), cv2.COLOR_BGR2RGB)
    writer = Mp4Writer(path, 25.0, (640 if change == "two" else 320, 320))
    for i in range(round(seconds * 25)):
        frame = np.full((320, 320, 3), 110, np.uint8)
        dx = 20 + round(8 * np.sin(i / 9))
        frame[32:288, dx : dx + 256] = face
        if change == "blank":
            frame[:] = 110
        elif change == "dark":
            frame = (frame // 8).astype(np.uint8)
        elif change == "two":
            frame = np.hstack([frame, frame[:, ::-1]])
        writer.write(frame)
    writer.close()
    return path


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "stablesync"


@pytest.fixture
def speech_playing(pulse_server: str, tmp_path: Path) -> Iterator[str]:
    """The demo speech, three times over, played into the server's sink; yields the mic name."""
    speech = read_audio(DEMO / "speech.wav")
    wav = write_wav(tmp_path / "speech3.wav", np.concatenate([speech] * 3), 16_000)
    player = subprocess.Popen(["paplay", "-d", pulse_server, str(wav)])
    try:
        yield f"{pulse_server}.monitor"
    finally:
        player.terminate()
        player.wait(10)


def test_script_lines_are_varied_and_timed() -> None:
    words = " ".join(LINES).lower()
    for sound in ("th", "sh", "ch", "ng", "v", "z", "oy", "ow", "oo", "j", "w", "y"):
        assert sound in words, sound
    assert LINES.count(PAUSE) >= 3 and syllables("Hello, this is") == 4
    script = Script()
    first, later = script.cue_at(0.0), script.cue_at(script.length_s + 0.1)
    assert first.text == LINES[0] and later.text == LINES[0] and later.index == len(LINES)
    assert 50.0 < script.length_s < 120.0  # about one default take


def test_each_second_says_what_to_fix() -> None:
    from stablesync.enroll.checks import FaceSample, TakeChecks
    from stablesync.realtime.local.take_display import second_problems

    checks, line, pause = TakeChecks(), Script().cue_at(0.0), Script().cue_at(Script().starts[2])
    good = FaceSample(1, 120.0, 0.05, True)
    assert second_problems(good, -20.0, line, checks) == []
    assert second_problems(good, -60.0, line, checks) == ["too quiet: speak up"]
    assert second_problems(good, -60.0, pause, checks) == []  # silent at a pause, as asked
    assert second_problems(FaceSample(0), -20.0, line, checks) == ["no face: face the camera"]
    assert second_problems(FaceSample(2, 120.0), -20.0, line, checks) == ["two faces: only you in view"]
    turned_dark = FaceSample(1, 20.0, 0.5, False)
    assert second_problems(turned_dark, -20.0, line, checks) == [
        "turn toward the camera",
        "mouth out of the picture",
        "too dark: light your face",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--camera", "0", "--video", "x.mp4"], "give one"),
        (["--mic", "default", "--video", "x.mp4"], "only used with --camera"),
        (["--camera", "0", "--seconds", "0"], "--seconds 0"),
    ],
)
def test_camera_option_errors(
    extra: list[str], message: str, xdg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["enroll", "me", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.timeout(240)
def test_camera_take_is_recorded_checked_and_enrolled_from(
    speech_playing: str,
    tmp_path: Path,
    xdg: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from stablesync.enroll import pipeline
    from stablesync.enroll.checks import check_take

    handed: list[pipeline.EnrollConfig] = []

    def enroll_checked(cfg: pipeline.EnrollConfig) -> dict[str, float]:
        """Enroll's own first step, the file checks, on the recorded take; training is tested
        on files in test_enroll.py."""
        check_take(cfg.video, cfg.audio, cfg.checks)
        handed.append(cfg)
        return {}

    monkeypatch.setattr(pipeline, "enroll", enroll_checked)
    camera = camera_file(tmp_path / "cam.mp4", 2.0)  # looped by the camera source
    args = ["enroll", "me", "--camera", str(camera), "--mic", speech_playing, "--seconds", "3"]
    assert cli(args) == 0
    out = capsys.readouterr().out
    assert 'read: "Hello, this is my own voice' in out
    assert "[" + "#" * 30 + "]   3/3 s" in out  # the progress bar, full
    assert "enroll: take of 3.0 s recorded" in out
    take = xdg / "takes" / "me"
    assert (take.stat().st_mode & 0o777) == 0o700
    (cfg,) = handed
    assert cfg.video == take / "take.mp4" and cfg.name == "me"
    from stablesync.media import iter_video_frames

    frames = [f for f, _ in iter_video_frames(cfg.video)]
    assert len(frames) == 75 and frames[0].shape == (320, 320, 3)  # 3 s at 25 fps
    assert cfg.audio.shape[0] == 48_000 and np.abs(cfg.audio).max() > 0.05  # the speech
    assert sorted(p.name for p in take.iterdir()) == ["take.mp4", "take.wav"]
    assert cli(["profiles", "remove", "me"]) == 0 and not take.exists()


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("change", "seconds", "speech", "reason"),
    [
        ("blank", 2.0, True, "no face"),
        ("dark", 2.0, True, "too dark"),
        ("two", 2.0, True, "two faces"),
        ("none", 2.0, False, "silence"),
        ("none", 1.0, True, "too short"),
    ],
)
def test_bad_camera_takes_are_one_line_exit_2(
    change: str,
    seconds: float,
    speech: bool,
    reason: str,
    pulse_server: str,
    tmp_path: Path,
    xdg: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    camera = camera_file(tmp_path / "cam.mp4", 2.0, change)
    player = None
    if speech:
        wav = write_wav(tmp_path / "speech.wav", np.tile(read_audio(DEMO / "speech.wav"), 2), 16_000)
        player = subprocess.Popen(["paplay", "-d", pulse_server, str(wav)])
    try:
        args = ["enroll", "me", "--camera", str(camera), "--mic", f"{pulse_server}.monitor"]
        assert cli([*args, "--seconds", str(seconds)]) == 2
    finally:
        if player is not None:
            player.terminate()
            player.wait(10)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unusable take" in err[0] and reason in err[0], err
    assert not (xdg / "profiles" / "me").exists()
    assert not any((xdg / "takes" / "me").iterdir())  # nothing of the refused take is kept


def test_a_refused_take_leaves_none_of_its_files_and_keeps_what_was_there(tmp_path: Path) -> None:
    """A take refused for its reasons (here 1 s of grey frames, silent) removes the mp4 and WAV
    it wrote; an older take at the same paths, and anything else in the folder, stay as they were."""
    import asyncio

    from stablesync.realtime.local.take_recorder import RecordConfig, TakeRecorder
    from tests.test_local_faults import Camera, Microphone

    before = {"take.mp4": b"an older take", "take.wav": b"its sound", "notes.txt": b"mine"}
    for name, data in before.items():
        (tmp_path / name).write_bytes(data)
    cfg = RecordConfig(seconds=1.0, mic_wait_s=0.0)
    take = TakeRecorder(Camera(), Microphone(), tmp_path / "take.mp4", tmp_path / "take.wav", cfg)
    with pytest.raises(UserError, match=r"unusable take: too short .*silence"):
        asyncio.run(take.record())
    assert take.written == 25  # the take was recorded, then refused
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_take_keeps_capture_times_nearest_frame_per_instant_and_sound_on_the_clock(tmp_path: Path) -> None:
    """A 30 fps camera into the 25 fps take: each instant k/25 s gets the frame captured
    nearest to it; microphone chunks are placed where their capture times say (here the first
    arrives 0.1 s into the take: the take's sound starts with 0.1 s of silence). A take waits
    for its microphone's first chunk before it starts (unless it stays silent for mic_wait_s)."""
    import asyncio

    from stablesync.media import iter_video_frames
    from stablesync.realtime.local.take_recorder import RecordConfig, TakeRecorder
    from stablesync.realtime.pipeline.frames import AudioChunk, VideoFrame

    def recorder(name: str, cfg: RecordConfig) -> TakeRecorder:
        return TakeRecorder(object(), object(), tmp_path / f"{name}.mp4", tmp_path / f"{name}.wav", cfg)  # type: ignore[arg-type]

    take = recorder("t", RecordConfig(seconds=1.0, mic_wait_s=0.0))  # the first frame starts it
    start = take.clock.start_ns + 5_000_000
    frame_ns = [round(i * 1e9 / 30) for i in range(32)]
    tone = (0.5 * np.sin(np.arange(320) / 3.0)).astype(np.float32)
    waiting = recorder("w", RecordConfig(seconds=1.0))

    async def feed() -> None:
        for i, t_ns in enumerate(frame_ns):
            image = np.full((64, 64, 3), 7 * i, np.uint8)
            await take._on_frame(VideoFrame(image, start + t_ns, t_ns, i))
        for i in range(80):  # 1.6 s of 20 ms chunks, from 0.1 s on
            await take._on_audio(AudioChunk(tone, 16_000, start + 100_000_000 + i * 20_000_000, 0))
        await take._drain()
        base = waiting.clock.start_ns
        await waiting._on_frame(VideoFrame(np.zeros((64, 64, 3), np.uint8), base + 5_000_000, 0, 0))
        assert waiting.written == 0 and waiting._t0_ns is None  # no sound yet: not started
        await waiting._on_audio(AudioChunk(tone, 16_000, base + 300_000_000, 0))
        assert waiting._t0_ns == base + 300_000_000
        await waiting._drain()

    asyncio.run(feed())
    with pytest.raises(UserError, match=r"unusable take: too short .*no face"):  # 1 s, never looked at
        take._finish()
    video, wav = take._write_files(take._audio_between(0, 16_000))  # the files a usable take keeps
    values = [round(float(f.mean())) for f, _ in iter_video_frames(video)]
    nearest = [int(np.argmin([abs(t - k * 40_000_000) for t in frame_ns])) for k in range(25)]
    assert len(values) == 25
    assert all(abs(v - 7 * i) <= 2 for v, i in zip(values, nearest, strict=True)), (values, nearest)
    sound = read_audio(wav)
    assert sound.shape[0] == 16_000
    assert np.abs(sound[:1590]).max() == 0.0 and np.abs(sound[1610:1900]).max() > 0.4


@pytest.mark.timeout(240)
def test_camera_take_shows_in_a_preview_window_and_q_ends_it(
    request: pytest.FixtureRequest,
    pulse_server: str,
    tmp_path: Path,
    xdg: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a real X server (Xvfb): the camera picture shows in the window (mirrored, with the line
    to read drawn on it) while the take records, and q in the window ends the take early."""
    import re
    import threading
    import time

    from stablesync.enroll import pipeline

    screen: Xvfb = request.getfixturevalue("xvfb")
    monkeypatch.setattr(pipeline, "enroll", lambda cfg: {})  # the take's hand-off is tested above
    camera = camera_file(tmp_path / "cam.mp4", 2.0)
    speech = write_wav(tmp_path / "speech.wav", np.tile(read_audio(DEMO / "speech.wav"), 3), 16_000)
    args = ["enroll", "me", "--camera", str(camera), "--mic", f"{pulse_server}.monitor", "--seconds", "60"]
    codes: list[int] = []
    run = threading.Thread(target=lambda: codes.append(cli(args)))
    run.start()
    player = None
    try:
        _xdotool("search", "--sync", "--name", "stablesync enroll", "mousemove", "--window", "%1", "20", "20")
        player = subprocess.Popen(["paplay", "-d", pulse_server, str(speech)])  # the take starts now

        def camera_on_screen() -> bool:  # the take's grey background, darkened under the text bands
            pixels = screen.screen().astype(int)
            grey = (np.abs(pixels - 110).max(axis=2) <= 6).sum()
            band = (np.abs(pixels - 38).max(axis=2) <= 4).sum()
            return bool(grey > 20_000 and band > 3_000)

        _wait_for(camera_on_screen, 30.0)
        time.sleep(2.0)  # a take long enough to be usable
        _xdotool("key", "q")
    finally:
        run.join(120)
        if player is not None:
            player.terminate()
            player.wait(10)
    assert codes == [0]
    out = capsys.readouterr().out
    assert "no preview window" not in out
    took = re.search(r"enroll: take of ([\d.]+) s recorded", out)
    assert took is not None and 1.5 <= float(took.group(1)) < 30.0, out[-500:]

"""The synthetic corpus: files, json keys, splits, determinism, resume, trackability, lip motion."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from stablesync.data.espeak import EspeakSynth, Utterance, run_isolated
from stablesync.data.faces import face_split
from stablesync.data.quality import detection_rate, envelope_correlation
from stablesync.data.synth import SynthConfig, plan_clip, synthesise_corpus
from stablesync.data.text import LANGUAGES, VOICES, sentences
from stablesync.data.visemes import mouth_track, viseme_of
from stablesync.errors import UserError
from stablesync.face import FaceMeshTracker
from stablesync.media import iter_video_frames, video_info

REQUIRED_KEYS = {"fps", "sample_rate_hz", "voice", "face", "mouth_open", "visemes", "phonemes", "landmarks"}


def test_clip_files_and_json(tiny_corpus: Path) -> None:
    manifest = json.loads((tiny_corpus / "manifest.json").read_text())
    assert [c["name"] for c in manifest["clips"]] == ["clip00000", "clip00001", "clip00002"]
    for clip in manifest["clips"]:
        meta = json.loads((tiny_corpus / clip["meta"]).read_text())
        assert set(meta) >= REQUIRED_KEYS
        assert meta["fps"] == 25.0 and meta["sample_rate_hz"] == 16000
        n = meta["n_frames"]
        assert n == 50
        mouth = np.array(meta["mouth_open"])
        assert mouth.shape == (n,) and mouth.min() >= 0.0 and mouth.max() <= 1.0 and mouth.max() > 0.3
        assert len(meta["visemes"]) == n and "sil" in meta["visemes"]
        starts = [p["start_s"] for p in meta["phonemes"]]
        assert len(starts) > 5 and starts == sorted(starts) and starts[0] >= 0 and starts[-1] < 2.0
        assert all(isinstance(p["symbol"], str) and p["symbol"] for p in meta["phonemes"])
        marks = np.load(tiny_corpus / clip["landmarks"])["landmarks"]
        assert marks.shape == (n, 468, 2) and marks.dtype == np.float32
        with wave.open(str(tiny_corpus / clip["audio"])) as w:
            assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, 16000, 2)
            assert w.getnframes() == 32000
        fps, width, height = video_info(tiny_corpus / clip["video"])
        assert (fps, width, height) == (25.0, 256, 256)
        assert sum(1 for _ in iter_video_frames(tiny_corpus / clip["video"])) == n


def test_splits_disjoint_by_voice_and_face(tiny_corpus: Path) -> None:
    manifest = json.loads((tiny_corpus / "manifest.json").read_text())
    assert sorted(c["split"] for c in manifest["clips"]) == ["test", "train", "val"]
    plans = [plan_clip(5, i, 4.0) for i in range(300)]
    for attr in ("voice", "face"):
        owners: dict[str, set[str]] = {}
        for p in plans:
            key = p.voice.name if attr == "voice" else p.face
            owners.setdefault(key, set()).add(p.split)
        assert all(len(s) == 1 for s in owners.values()), attr
    assert all(face_split(p.face) == p.split for p in plans)
    assert len({p.voice.name for p in plans}) >= 10
    assert len({p.voice.language for p in plans}) >= 3
    assert {"astronaut", "grace_hopper"} <= {p.face for p in plans}


def test_voices_and_sentences() -> None:
    assert len(VOICES) >= 10 and len({v.language for v in VOICES}) >= 3
    for lang in LANGUAGES:
        assert len(sentences(lang)) >= 20

    def speak_all(synth: EspeakSynth) -> list[Utterance]:
        return [synth.synthesise(sentences(v.language)[2], v.espeak, 170, v.base_pitch) for v in VOICES]

    utterances = run_isolated(speak_all, seed=3)
    assert [u.samples.tobytes() for u in run_isolated(speak_all, seed=3)] == [
        u.samples.tobytes() for u in utterances
    ]
    for utt in utterances:
        seconds = len(utt.samples) / utt.sample_rate_hz
        starts = [p.start_s for p in utt.phonemes]
        assert seconds > 0.5 and len(starts) > 10
        assert starts == sorted(starts) and starts[-1] < seconds


def test_viseme_table_and_silence_is_still() -> None:
    assert viseme_of("p").name == "PBM" and viseme_of("ɑːɹ").name == "AA" and viseme_of("uː").name == "UW"
    assert viseme_of("tʃ").name == "SH" and viseme_of("ˈa").name == "AA" and viseme_of("ɔ̃").name == "OH"
    # speech 0.2-0.8 s (a phoneme lasts at most 0.3 s), silence until 1.6 s, speech again
    phonemes = [("b", 0.2), ("a", 0.25), ("m", 0.45), ("a", 0.5), ("t", 1.6), ("u", 1.7)]
    track = mouth_track(phonemes, 2.0, 25.0)
    assert track.jaw.shape == (50,) and len(track.visemes) == 50
    pause = slice(int(1.0 * 25), int(1.45 * 25))
    assert np.all(track.jaw[pause] == 0.0) and np.all(track.width[pause] == 0.5)
    assert np.all(track.rounding[pause] == 0.0) and set(track.visemes[pause]) == {"sil"}
    assert track.jaw[int(0.3 * 25)] > 0.5  # open on /a/
    assert track.rounding[int(1.75 * 25)] > 0.5  # rounded on /u/


def test_every_frame_trackable_and_lips_follow(tiny_corpus: Path) -> None:
    found = total = 0
    for video in sorted(tiny_corpus.glob("clip*.mp4")):
        with FaceMeshTracker(video=True) as tracker:
            f, t, tracked_corr = detection_rate(video, tracker)
        found, total = found + f, total + t
        assert tracked_corr > 0.6, f"{video.name}: tracked mouth opening does not follow mouth_open"
    assert found / total >= 0.99
    correlations = [envelope_correlation(m) for m in sorted(tiny_corpus.glob("clip*.json"))]
    assert np.mean(correlations) >= 0.5, correlations


def test_deterministic_and_resumable(tiny_corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    synthesise_corpus(SynthConfig(again, clips=1, seconds=2.0, seed=0, progress=False))
    assert (again / "clip00000.wav").read_bytes() == (tiny_corpus / "clip00000.wav").read_bytes()
    a = json.loads((again / "clip00000.json").read_text())
    b = json.loads((tiny_corpus / "clip00000.json").read_text())
    assert a == b
    np.testing.assert_array_equal(
        np.load(again / "clip00000.npz")["landmarks"], np.load(tiny_corpus / "clip00000.npz")["landmarks"]
    )
    # resume: the finished clip is kept as is, only the missing one is made
    copy = tmp_path / "copy"
    shutil.copytree(again, copy)
    before = (copy / "clip00000.mp4").stat().st_mtime_ns
    synthesise_corpus(SynthConfig(copy, clips=2, seconds=2.0, seed=0, progress=False))
    assert (copy / "clip00000.mp4").stat().st_mtime_ns == before
    manifest = json.loads((copy / "manifest.json").read_text())
    assert [c["name"] for c in manifest["clips"]] == ["clip00000", "clip00001"]
    with pytest.raises(UserError, match="seed"):
        synthesise_corpus(SynthConfig(copy, clips=2, seconds=2.0, seed=1, progress=False))


@pytest.mark.slow
def test_parallel_workers_give_the_same_corpus(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "parallel"
    synthesise_corpus(SynthConfig(out, clips=3, seconds=2.0, seed=0, workers=2, progress=False))
    for name in ("clip00000", "clip00001", "clip00002"):
        assert (out / f"{name}.wav").read_bytes() == (tiny_corpus / f"{name}.wav").read_bytes()
        assert json.loads((out / f"{name}.json").read_text()) == json.loads(
            (tiny_corpus / f"{name}.json").read_text()
        )
    assert json.loads((out / "manifest.json").read_text()) == json.loads(
        (tiny_corpus / "manifest.json").read_text()
    )

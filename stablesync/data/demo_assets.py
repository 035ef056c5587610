"""Regenerates the committed demo assets: `python -m stablesync.data.demo_assets`.

- `stablesync/assets/demo/face.png`: the astronaut photo (scikit-image, public domain NASA
  image) cropped square around the face, 256x256, smiling as photographed.
- `stablesync/assets/demo/speech.wav`: about 5 s of project-written English sentences spoken by
  espeak-ng (voice en-us+m3), 16 kHz mono PCM16, with short pauses.
"""

from __future__ import annotations

import cv2
import numpy as np

from stablesync.audio import resample
from stablesync.bundled import DEMO_DIR
from stablesync.data.espeak import EspeakSynth, run_isolated
from stablesync.data.faces import real_photo
from stablesync.face import FaceMeshTracker
from stablesync.media import write_wav

SENTENCES = ("Good video calls need clear sound and a steady picture.", "Please mute your microphone.")


def demo_face(size: int = 256) -> np.ndarray:  # type: ignore[type-arg]
    photo = real_photo("astronaut")
    with FaceMeshTracker(video=False) as tracker:
        points = tracker.detect(photo)[0].points
    x0, y0 = points[:, :2].min(0)
    x1, y1 = points[:, :2].max(0)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.85 * max(x1 - x0, y1 - y0)
    m = np.array([[size / (2 * half), 0, size / 2 - cx * size / (2 * half)], [0, size / (2 * half), 0]])
    m[1, 2] = size / 2 - cy * size / (2 * half)
    return np.asarray(
        cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    )


def demo_speech(rate_hz: int = 16_000) -> np.ndarray:  # type: ignore[type-arg]
    def speak(synth: EspeakSynth) -> list[np.ndarray]:  # type: ignore[type-arg]
        out = []
        for text in SENTENCES:
            utt = synth.synthesise(text, "en-us+m3", 165, 45)
            out.append(resample(utt.samples.astype(np.float32) / 32768.0, utt.sample_rate_hz, rate_hz))
        return out

    parts = run_isolated(speak, seed=0)
    pause = np.zeros(int(0.35 * rate_hz), np.float32)
    audio = np.concatenate([pause, parts[0], pause, parts[1], pause])
    return (0.8 * audio / max(float(np.abs(audio).max()), 1e-6)).astype(np.float32)


def main() -> None:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    face = demo_face()
    cv2.imwrite(str(DEMO_DIR / "face.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    write_wav(DEMO_DIR / "speech.wav", demo_speech(), 16_000)
    print(f"wrote {DEMO_DIR / 'face.png'} and {DEMO_DIR / 'speech.wav'}")


if __name__ == "__main__":
    main()

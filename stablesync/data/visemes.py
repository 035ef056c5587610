"""From timed IPA phonemes to per-frame mouth parameters (jaw opening, lip width, lip rounding).

The table groups IPA phonemes into visemes, mouth shapes that look alike. Each viseme has a
target (jaw, width, rounding):

| viseme | phonemes (IPA)              | jaw  | width | rounding | look                              |
|--------|-----------------------------|------|-------|----------|-----------------------------------|
| sil    | pauses                      | 0.00 | 0.50  | 0.00     | closed, relaxed, still            |
| PBM    | p b m                       | 0.00 | 0.45  | 0.10     | lips pressed together             |
| FV     | f v ʋ ɸ β                   | 0.12 | 0.50  | 0.00     | lower lip under the upper teeth   |
| TH     | θ ð                         | 0.22 | 0.55  | 0.00     | tongue between the teeth          |
| TDN    | t d n l ɾ ɫ                 | 0.28 | 0.55  | 0.00     | teeth nearly closed, tongue up    |
| KG     | k g ɡ ŋ x ɣ χ h ɦ ʔ         | 0.35 | 0.50  | 0.00     | back closure, jaw half open       |
| SZ     | s z ʦ ʣ                     | 0.14 | 0.65  | 0.00     | teeth together, lips spread       |
| SH     | ʃ ʒ tʃ dʒ ç ʝ ɕ ʑ           | 0.20 | 0.35  | 0.60     | lips pushed forward               |
| R      | r ɹ ʁ ʀ ɻ ɚ ɝ               | 0.25 | 0.40  | 0.45     | slightly rounded                  |
| AA     | a ɑ æ ɐ ʌ ä                 | 0.95 | 0.60  | 0.00     | jaw wide open                     |
| EH     | e ɛ ə ɜ ɘ œ(open)           | 0.60 | 0.65  | 0.05     | mid open, spread                  |
| IY     | i ɪ j y(unrounded) ɨ ɯ      | 0.30 | 0.85  | 0.00     | narrow, wide spread               |
| OH     | o ɔ ɒ ø œ                   | 0.70 | 0.35  | 0.75     | open and round                    |
| UW     | u ʊ w ʉ y ɥ                 | 0.30 | 0.20  | 1.00     | small, very round                 |

Diphthongs take the viseme of their first symbol, affricates (tʃ dʒ ts dz) that of the
fricative. Length, stress, nasal and other diacritics are ignored. Unknown symbols fall back
to EH (a mid vowel-like opening).

Coarticulation: the piecewise-constant targets (5 ms steps) are smoothed with a truncated
Gaussian (sigma 35 ms, both directions: lips anticipate the next sound and lag the last one),
then averaged over each video frame. A phoneme lasts until the next one, at most 0.3 s, and
stretches where the audio is silent are pauses: after a pause of more than ~0.2 s the lips
are exactly closed and still (jaw 0, width 0.5, rounding 0).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Viseme:
    name: str
    jaw: float  # 0 closed .. 1 fully open
    width: float  # 0 narrow .. 1 wide; 0.5 relaxed
    rounding: float  # 0 relaxed .. 1 fully rounded/protruded


VISEMES: Final[Mapping[str, Viseme]] = MappingProxyType(
    {
        v.name: v
        for v in (
            Viseme("sil", 0.00, 0.50, 0.00),
            Viseme("PBM", 0.00, 0.45, 0.10),
            Viseme("FV", 0.12, 0.50, 0.00),
            Viseme("TH", 0.22, 0.55, 0.00),
            Viseme("TDN", 0.28, 0.55, 0.00),
            Viseme("KG", 0.35, 0.50, 0.00),
            Viseme("SZ", 0.14, 0.65, 0.00),
            Viseme("SH", 0.20, 0.35, 0.60),
            Viseme("R", 0.25, 0.40, 0.45),
            Viseme("AA", 0.95, 0.60, 0.00),
            Viseme("EH", 0.60, 0.65, 0.05),
            Viseme("IY", 0.30, 0.85, 0.00),
            Viseme("OH", 0.70, 0.35, 0.75),
            Viseme("UW", 0.30, 0.20, 1.00),
        )
    }
)

# First IPA character (after normalisation) -> viseme name.
# Viseme name -> the first IPA characters that select it.
_VISEME_CHARS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "PBM": "pbm",
        "FV": "fvʋɸβ",
        "TH": "θð",
        "TDN": "tdnlɾɫɲɳ",
        "KG": "kgɡŋxɣχhɦʔqc",
        "SZ": "szʦʣ",
        "SH": "ʃʒçʝɕʑ",
        "R": "rɹʁʀɻɚɝ",
        "AA": "aɑæɐʌä",
        "EH": "eɛəɜɘ",
        "IY": "iɪjɨɯ",
        "OH": "oɔɒøœɤ",
        "UW": "uʊwʉyɥ",
    }
)
_IPA_TO_VISEME: Final[Mapping[str, str]] = MappingProxyType(
    {c: name for name, chars in _VISEME_CHARS.items() for c in chars}
)

# Affricates whose look is that of their second symbol.
_DIGRAPHS: Final[Mapping[str, str]] = MappingProxyType(
    {"tʃ": "SH", "dʒ": "SH", "ts": "SZ", "dz": "SZ", "tɕ": "SH", "dʑ": "SH"}
)

_IGNORED = frozenset("ˈˌːˑ-_'̩̯̪̃͡")
STEP_S = 0.005
SIGMA_S = 0.035
MAX_PHONEME_S = 0.3
MIN_PAUSE_S = 0.06


def viseme_of(symbol: str) -> Viseme:
    """The viseme of an IPA phoneme name as espeak-ng writes it ("aɪ", "ɑːɹ", "ɔ̃", "tʃ", ...)."""
    chars = [c for c in unicodedata.normalize("NFD", symbol) if c not in _IGNORED and not c.isspace()]
    chars = [c for c in chars if unicodedata.category(c) != "Mn"]
    if not chars:
        return VISEMES["sil"]
    head = "".join(chars[:2])
    if head in _DIGRAPHS:
        return VISEMES[_DIGRAPHS[head]]
    return VISEMES[_IPA_TO_VISEME.get(chars[0], "EH")]


@dataclass(frozen=True)
class MouthTrack:
    """Per video frame: frame t is at t / fps seconds."""

    jaw: NDArray[np.float32]  # (T,) in [0, 1]: this is the clip's `mouth_open`
    width: NDArray[np.float32]  # (T,) in [0, 1]
    rounding: NDArray[np.float32]  # (T,) in [0, 1]
    visemes: tuple[str, ...]  # (T,) the dominant viseme of each frame


def pause_mask(samples: NDArray[np.float32], sample_rate_hz: int, n_steps: int) -> NDArray[np.bool_]:
    """True for 5 ms steps inside stretches of near-silence at least MIN_PAUSE_S long."""
    hop = round(sample_rate_hz * STEP_S)
    padded = np.zeros(n_steps * hop, dtype=np.float64)
    n = min(len(samples), len(padded))
    padded[:n] = samples[:n]
    rms = np.sqrt((padded.reshape(n_steps, hop) ** 2).mean(1))
    quiet = rms < max(1e-4, 0.02 * float(rms.max(initial=0.0)))
    mask = np.zeros(n_steps, dtype=bool)
    min_len = round(MIN_PAUSE_S / STEP_S)
    start = None
    for i, q in enumerate([*quiet.tolist(), False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= min_len:
                mask[start:i] = True
            start = None
    return mask


def mouth_track(
    phonemes: Sequence[tuple[str, float]],
    duration_s: float,
    fps: float,
    pauses: NDArray[np.bool_] | None = None,
) -> MouthTrack:
    """Mouth parameters per frame for (symbol, start_s) phonemes of a clip lasting `duration_s`.

    `pauses` (one bool per 5 ms step, see `pause_mask`) marks silent stretches of the audio.
    """
    n_steps = int(np.ceil(duration_s / STEP_S)) + 1
    names = np.full(n_steps, "sil", dtype=object)
    ordered = sorted(phonemes, key=lambda p: p[1])
    for i, (symbol, start_s) in enumerate(ordered):
        end_s = ordered[i + 1][1] if i + 1 < len(ordered) else duration_s
        end_s = min(end_s, start_s + MAX_PHONEME_S, duration_s)
        a, b = round(start_s / STEP_S), round(end_s / STEP_S)
        names[max(a, 0) : max(b, 0)] = viseme_of(symbol).name
    if pauses is not None:
        names[: len(pauses)][pauses[:n_steps]] = "sil"
    targets = np.array([[VISEMES[n].jaw, VISEMES[n].width, VISEMES[n].rounding] for n in names])
    radius = round(3 * SIGMA_S / STEP_S)
    x = np.arange(-radius, radius + 1) * STEP_S
    kernel = np.exp(-0.5 * (x / SIGMA_S) ** 2)
    kernel /= kernel.sum()
    padded = np.concatenate([np.repeat(targets[:1], radius, 0), targets, np.repeat(targets[-1:], radius, 0)])
    smooth = np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(3)], axis=1)
    n_frames = round(duration_s * fps)
    half = round(0.5 / fps / STEP_S)
    rows, labels = [], []
    for t in range(n_frames):
        c = round(t / fps / STEP_S)
        lo, hi = max(c - half, 0), min(c + half + 1, n_steps)
        rows.append(smooth[lo:hi].mean(0))
        window = list(names[lo:hi])
        labels.append(max(window, key=window.count))  # ties: the earliest (no set: hash order varies)
    params = np.clip(np.array(rows, dtype=np.float32).reshape(-1, 3), 0.0, 1.0)
    # Exact stillness where the whole window was silent (float noise from the convolution).
    neutral = np.array([0.0, 0.5, 0.0], dtype=np.float32)
    params[np.abs(params - neutral).max(1) < 1e-4] = neutral
    return MouthTrack(
        jaw=params[:, 0].copy(),
        width=params[:, 1].copy(),
        rounding=params[:, 2].copy(),
        visemes=tuple(labels),
    )

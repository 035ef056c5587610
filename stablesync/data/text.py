"""The corpus's text and voices: sentences the project wrote itself, and espeak-ng voices.

`stablesync/data/text/<lang>.txt` holds one sentence per line (lines starting with # are
comments). Voices are espeak-ng language voices with a variant (`+m3`, `+f2`, ...); each has
a fixed split so train, val and test never share a voice.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Voice:
    name: str  # the id written to manifests, e.g. "en-us-f2"
    espeak: str  # espeak-ng voice + variant, e.g. "en-us+f2"
    language: str  # the sentence file's language code
    base_pitch: int  # espeak pitch 0-100 around which a clip's pitch is drawn
    split: Split


VOICES: tuple[Voice, ...] = (
    Voice("en-us-m1", "en-us+m1", "en", 40, "train"),
    Voice("en-us-f2", "en-us+f2", "en", 60, "train"),
    Voice("en-gb-m3", "en+m3", "en", 45, "train"),
    Voice("en-scot-f4", "en-gb-scotland+f4", "en", 62, "train"),
    Voice("de-m2", "de+m2", "de", 42, "train"),
    Voice("de-f1", "de+f1", "de", 58, "train"),
    Voice("fr-m4", "fr+m4", "fr", 44, "train"),
    Voice("fr-f3", "fr+f3", "fr", 60, "train"),
    Voice("es-419-m5", "es-419+m5", "es", 40, "train"),
    Voice("es-f5", "es+f5", "es", 62, "train"),
    Voice("it-m6", "it+m6", "it", 45, "train"),
    Voice("en-us-m7", "en-us+m7", "en", 38, "val"),
    Voice("fr-be-f1", "fr-be+f1", "fr", 60, "val"),
    Voice("de-m3", "de+m3", "de", 44, "test"),
    Voice("en-rp-f2", "en-gb-x-rp+f2", "en", 60, "test"),
)

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it")


def sentences(language: str) -> list[str]:
    """The sentences of one language, in file order."""
    if language not in LANGUAGES:
        raise ValueError(f"no sentences for language {language!r}; expected one of {LANGUAGES}")
    text = resources.files("stablesync.data").joinpath("text").joinpath(f"{language}.txt").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def voices_for(split: Split) -> list[Voice]:
    return [v for v in VOICES if v.split == split]

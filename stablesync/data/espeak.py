"""espeak-ng through its C library (`libespeak-ng.so.1`, ctypes), in synchronous mode.

The command-line tool gives audio but no timing; the library, initialised with phoneme events
and IPA phoneme names, reports every phoneme with its position in the audio (milliseconds from
the start of the utterance). Used only by corpus generation: nothing here runs in real time.

espeak-ng keeps one synthesiser per process, with state that carries over between utterances;
`run_isolated` runs a synthesis in a forked child so that results depend only on a seed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from stablesync.errors import UserError

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_PHONEME_IPA = 0x0002
CHARS_UTF8 = 1
POS_CHARACTER = 1
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_PHONEME = 7
PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4
EE_OK = 0


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT from speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Phoneme:
    symbol: str  # IPA as espeak-ng names it (may carry stress or length marks)
    start_s: float  # from the start of the utterance's audio


@dataclass(frozen=True)
class Utterance:
    samples: NDArray[np.int16]  # mono, at `sample_rate_hz`
    sample_rate_hz: int
    phonemes: tuple[Phoneme, ...]


@dataclass
class _Collector:
    chunks: list[NDArray[np.int16]] = field(default_factory=list)
    phonemes: list[Phoneme] = field(default_factory=list)


def _load_library() -> ctypes.CDLL:
    names = ["libespeak-ng.so.1"]
    found = ctypes.util.find_library("espeak-ng")
    if found:
        names.append(found)
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise UserError("libespeak-ng.so.1: not found; install the Debian package libespeak-ng1")


class EspeakSynth:
    """Synthesises text with a voice and returns samples plus timed IPA phonemes."""

    def __init__(self) -> None:
        lib = _load_library()
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, None, INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA
        )
        if rate <= 0:
            raise UserError("libespeak-ng: initialisation failed (is espeak-ng-data installed?)")
        self.sample_rate_hz = int(rate)
        self._lib = lib
        self._collector = _Collector()
        self._callback = _CALLBACK(self._on_synth)  # kept alive as long as the instance
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(
        self, wav: ctypes._Pointer[ctypes.c_short], n_samples: int, events: ctypes._Pointer[_Event]
    ) -> int:
        if n_samples > 0 and wav:
            self._collector.chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).astype(np.int16))
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == EVENT_PHONEME:
                symbol = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", errors="replace")
                if symbol.strip():
                    self._collector.phonemes.append(Phoneme(symbol, ev.audio_position / 1000.0))
            i += 1
        return 0  # continue synthesis

    def synthesise(
        self, text: str, voice: str, rate_wpm: int, pitch: int, pitch_range: int = 50
    ) -> Utterance:
        """`voice` is an espeak-ng voice name with an optional variant, e.g. "en-us+f3"."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise UserError(f"espeak-ng voice {voice!r}: not found; see `espeak-ng --voices`")
        self._lib.espeak_SetParameter(PARAM_RATE, int(rate_wpm), 0)
        self._lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0)
        self._lib.espeak_SetParameter(PARAM_RANGE, int(pitch_range), 0)
        self._lib.espeak_SetParameter(PARAM_VOLUME, 100, 0)
        self._collector = _Collector()
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        status = self._lib.espeak_Synth(buf, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if status != EE_OK:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        chunks = self._collector.chunks
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return Utterance(samples, self.sample_rate_hz, tuple(self._collector.phonemes))


T = TypeVar("T")


def run_isolated(fn: Callable[[EspeakSynth], T], seed: int) -> T:
    """Runs `fn(synth)` in a forked child with a fresh espeak-ng and returns its (pickled) result.

    espeak-ng keeps state across utterances (libc `rand()` for breathiness, wave generator
    phases), so the same text twice in one process gives different samples. A child forked
    from a process that never synthesised, with `srand(seed)`, always starts from the same
    state: the speech of a clip depends on its seed only, whichever worker makes it and in
    whatever order. The calling process must not synthesise itself.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        # No garbage collection in the child: a collection there would run the destructors of
        # objects the parent left in reference cycles (an onnxruntime session's wait on its
        # thread pool, whose threads do not exist after fork() deadlocked the child).
        gc.disable()
        code = 0
        try:
            os.close(read_fd)
            ctypes.CDLL(None).srand(ctypes.c_uint(seed & 0xFFFFFFFF))
            try:
                payload = pickle.dumps((True, fn(EspeakSynth())))
            except BaseException as exc:  # sent to the parent, raised there
                payload = pickle.dumps((False, exc))
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"espeak-ng child process failed (wait status {status})")
    ok, value = pickle.loads(data)
    if not ok:
        raise value
    return cast(T, value)
